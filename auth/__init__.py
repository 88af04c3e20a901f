"""Signing in and sessions (views.py, session.py, ratelimit.py) and the one
place that decides who may do what (permissions.py). Importing the package
imports nothing else, so the services can use ``auth.permissions`` without
pulling in the views."""
