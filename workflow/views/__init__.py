from flask import Flask


def register_blueprints(app: Flask) -> None:
    from . import admin, audit_log, inbox, plans, reports, tasks
    from .helpers import register_template_helpers

    for module in (tasks, plans, inbox, admin, audit_log, reports):
        app.register_blueprint(module.bp)
    register_template_helpers(app)
