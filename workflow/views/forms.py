"""WTForms for the task, admin and inbox views.

The forms check shape only (a number is a number, a text is not too long);
the rules — who may, in which state, with which reason — live in the services,
so that a request made without the page gets the same answer as one made with it.
The admin forms also ask whether a name is taken, so that the answer appears at
its field; the admin services ask again before they write.
The task page writes its forms' HTML itself (many parts share one page and the
field names are fixed), and the views read them back through these classes.
"""
from __future__ import annotations

import re

from flask_wtf import FlaskForm as _FlaskForm
from flask_wtf.file import FileField
from wtforms.fields.choices import SelectChoice
from wtforms.i18n import get_translations
from wtforms import BooleanField, DateField, Field, IntegerField, PasswordField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional, ValidationError

from models import Role
from workflow import admin_services
from workflow.text import clean_line, clean_text
from workflow.vocabulary import RobotKind, UnitKind

from .urls import parse_id

_ZH = get_translations(["zh"])


class FlaskForm(_FlaskForm):
    """The base of every form (auth/forms.py too): built-in WTForms messages
    ("Not a valid integer value.") in Chinese, and text without bidi overrides
    or control characters (workflow/text.py), removed before any validator or
    view sees it: a multi-line field (TextAreaField) keeps its line breaks, any
    other text field becomes one line. Passwords are left exactly as typed."""

    class Meta:
        def get_translations(self, form):
            return _ZH

        def bind_field(self, form, unbound_field, options):
            cleaner = _cleaner_for(unbound_field.field_class)
            if cleaner is not None:
                options = dict(options, filters=(cleaner, *unbound_field.kwargs.get("filters", ())))
            return unbound_field.bind(form=form, **options)


def _cleaner_for(field_class):
    if not issubclass(field_class, StringField) or issubclass(field_class, PasswordField):
        return None
    return clean_text if issubclass(field_class, TextAreaField) else clean_line


VERSION_MESSAGE = "页面数据不完整（缺少版本号），请刷新页面后重试。"


class WholeNumberField(IntegerField):
    """An IntegerField whose "not a number" message is ours, not WTForms' generic one."""

    def __init__(self, label=None, validators=None, invalid_message: str = "请填写整数。", **kwargs):
        super().__init__(label, validators, **kwargs)
        self.invalid_message = invalid_message

    def process_formdata(self, valuelist):
        if not valuelist or valuelist[0] in ("", None):
            return
        try:
            self.data = int(str(valuelist[0]).strip())
        except ValueError:
            self.data = None
            raise ValueError(self.invalid_message) from None


class VersionedForm(FlaskForm):
    version = WholeNumberField(validators=[InputRequired(VERSION_MESSAGE)], invalid_message=VERSION_MESSAGE)


class IdListField(Field):
    """Row ids ticked in a list of checkboxes (rendered by the page itself)."""

    def __init__(self, label=None, validators=None, invalid_message="所选材料无效，请刷新页面后重新选择。", **kwargs):
        super().__init__(label, validators, **kwargs)
        self.invalid_message = invalid_message

    def process_formdata(self, valuelist):
        self.data = []
        for raw in valuelist:
            value = parse_id(raw)
            if value is None:
                raise ValueError(self.invalid_message)
            self.data.append(value)

    def _value(self):
        return ""


class TransitionForm(VersionedForm):
    """Every event's form: each row of the event table reads the inputs it names."""
    statement = TextAreaField("完成情况说明", validators=[Optional(), Length(max=5000, message="完成情况说明不能超过 5000 字。")])
    reason = TextAreaField("理由", validators=[Optional(), Length(max=2000, message="理由不能超过 2000 字。")])
    carry = IdListField("沿用以前提交的材料", default=list)


class ProgressForm(VersionedForm):
    percent = WholeNumberField("完成比例（%）", validators=[
        InputRequired("请填写完成比例。"), NumberRange(0, 100, "完成比例须在 0 到 100 之间。")],
        invalid_message="完成比例须为 0 到 100 之间的整数。")
    note = TextAreaField("进度说明", validators=[Length(max=5000, message="进度说明不能超过 5000 字。")])


class EvidenceForm(VersionedForm):
    file = FileField("文件")
    description = StringField("文件说明", validators=[Optional(), Length(max=500, message="文件说明不能超过 500 字。")])
    text = TextAreaField("文字材料", validators=[Optional(), Length(max=10000, message="文字材料不能超过 10000 字。")])


class UrgeForm(FlaskForm):
    message = TextAreaField("催办内容", validators=[Optional(), Length(max=500, message="催办内容不能超过 500 字。")])


class EditTaskForm(VersionedForm):
    text = TextAreaField("任务内容", validators=[DataRequired("请填写任务内容。"), Length(max=5000)])
    deadline = DateField("完成时限", validators=[Optional()], format="%Y-%m-%d")
    deadline_text = StringField("时限原文", validators=[Optional(), Length(max=100, message="时限原文不能超过 100 字。")])
    long_term = BooleanField("长期任务（无固定完成时限）")

    def validate(self, extra_validators=None) -> bool:
        ok = super().validate(extra_validators)
        if ok and self.long_term.data and self.deadline.data:
            self.deadline.errors.append("长期任务不能同时设置完成时限：请清空日期或取消“长期任务”。")
            return False
        return ok


class BulkReceiveForm(FlaskForm):
    """全部签收 on the to-do page: the ticked parts, or (``scope`` "all") every
    part of my unit not yet received."""
    part = IdListField("所选任务", default=list, invalid_message="所选任务无效，请刷新页面后重新选择。")
    scope = StringField("范围", validators=[Optional()])


class BulkTasksForm(FlaskForm):
    """The office's bulk actions on the task list: the ticked tasks and a message."""
    task_ids = IdListField("所选任务", default=list, invalid_message="所选任务无效，请刷新页面后重新选择。")
    message = TextAreaField("内容", validators=[Optional(), Length(max=500, message="内容不能超过 500 字。")])
    action = StringField("操作", validators=[Optional()])
    next = StringField("返回", validators=[Optional()])


class BulkRemindForm(FlaskForm):
    """提醒签收 on the 待签收 page: the ticked parts."""
    part = IdListField("所选任务", default=list, invalid_message="所选任务无效，请刷新页面后重新选择。")
    message = TextAreaField("提醒内容", validators=[Optional(), Length(max=500, message="提醒内容不能超过 500 字。")])
    next = StringField("返回", validators=[Optional()])


# ---------------------------------------------------------------- admin

def USERNAME_RULE(form, field) -> None:  # noqa: N802  (used like the WTForms validator it replaced)
    # Read at call time: admin_services may still be importing when this module loads
    # (admin_services → auth → auth.forms → here).
    if not re.fullmatch(admin_services.USERNAME_PATTERN, field.data or ""):
        raise ValidationError(admin_services.USERNAME_MESSAGE)


def choices(pairs) -> list[SelectChoice]:
    """(value, label) pairs as WTForms wants them from 3.3 on."""
    return [SelectChoice(value, label) for value, label in pairs]


def _strip(value):
    return value.strip() if isinstance(value, str) else value


def _refuse(problem: str | None) -> None:
    if problem:
        raise ValidationError(problem)


# Uniqueness is asked here, at the field, so the page shows it there; the
# admin services ask the same functions again under a lock before writing.

class UserForm(FlaskForm):
    display_name = StringField("姓名", filters=[_strip], validators=[DataRequired("请填写姓名。"), Length(max=100)])
    unit_id = SelectField("单位", coerce=int, validators=[InputRequired("请选择单位。")])
    role = SelectField("角色", choices=choices(Role.LABELS.items()), validators=[DataRequired("请选择角色。")])
    active = BooleanField("启用（取消勾选即停用，该用户立即无法登录）", default=True)
    password = PasswordField("重置密码（留空则不修改）", validators=[Optional()])


class NewUserForm(UserForm):
    username = StringField("用户名", filters=[_strip],
                           validators=[DataRequired("请填写用户名。"), Length(max=64), USERNAME_RULE])
    password = PasswordField("初始密码", validators=[DataRequired("请设置初始密码。")])

    def validate_username(self, field) -> None:
        if not field.errors:
            _refuse(admin_services.username_problem(field.data))


class UnitForm(FlaskForm):
    name = StringField("单位名称", filters=[_strip], validators=[
        DataRequired("请填写单位名称。"), Length(max=100, message="单位名称不能超过 100 字。")])
    kind = SelectField("类别", choices=choices(UnitKind.labels().items()), validators=[DataRequired("请选择类别。")])

    def __init__(self, *args, unit=None, **kwargs):
        """``unit``: the unit being edited (its own name is not a conflict); None for a new one."""
        super().__init__(*args, obj=unit, **kwargs)
        self.unit = unit

    def validate_name(self, field) -> None:
        if field.errors or (self.unit is not None and field.data == self.unit.name):
            return
        _refuse(admin_services.unit_name_problem(field.data, self.unit.id if self.unit else None))


class RobotForm(FlaskForm):
    robot_kind = SelectField("工作群机器人", choices=[SelectChoice("", "不使用")] + choices(RobotKind.labels().items()),
                             validators=[Optional()])
    robot_url = StringField("Webhook 地址", filters=[_strip], validators=[
        Optional(), Length(max=500, message="Webhook 地址不能超过 500 个字符。")])
    robot_secret = PasswordField("加签密钥（钉钉）", validators=[
        Optional(), Length(max=200, message="加签密钥不能超过 200 个字符。")])


class AliasForm(FlaskForm):
    alias = StringField("别名（文件中出现的写法）", filters=[_strip], validators=[
        DataRequired("请填写别名。"), Length(max=100, message="别名不能超过 100 字。")])
    unit_id = SelectField("归入单位", coerce=int, validators=[InputRequired("请选择单位。")])

    def validate_alias(self, field) -> None:
        if not field.errors:
            _refuse(admin_services.alias_problem(field.data))
