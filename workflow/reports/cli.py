from flask.cli import AppGroup

report_cli = AppGroup("report", help="进展报告。")
