"""Names one body is written under, known before any import.

Offices rename bodies (发展改革委 became 发展改革局) and write long and short
forms (住房和城乡建设局 / 住房城乡建设局). The office edits the alias table in
the admin pages; this list only seeds it.
"""
import re

DEFAULT_ALIASES = {
    "区发展改革委": "区发展改革局",
    "区发改局": "区发展改革局",
    "区发改委": "区发展改革局",
    "区住房和城乡建设局": "区住房城乡建设局",
    "区人社局": "区人力资源社会保障局",
    "区人力资源和社会保障局": "区人力资源社会保障局",
    "区工信局": "区工业和信息化局",
}


def fuzzy_key(name: str) -> str:
    """Two names with the same key are probably one body written two ways:
    '和' dropped, and a 委 that became a 局 on renaming."""
    key = name.replace("和", "")
    return re.sub(r"(委员会|委)$", "局", key)
