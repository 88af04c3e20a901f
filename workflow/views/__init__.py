from flask import Flask


def register_blueprints(app: Flask) -> None:
    from . import plans, tasks

    app.register_blueprint(tasks.bp)
    app.register_blueprint(plans.bp)
    from .helpers import register_template_helpers

    register_template_helpers(app)
