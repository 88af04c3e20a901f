"""The web views, one blueprint a module; workflow/app.py registers them.

This file stays empty: workflow/queries.py imports workflow.views.urls, and
anything imported here would then load with every query module (a cycle).
"""
