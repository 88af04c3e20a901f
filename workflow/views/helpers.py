"""Small helpers shared by views and templates."""
from __future__ import annotations

from typing import Callable, NamedTuple

from flask import Flask, abort, make_response
from flask_login import current_user
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from auth.permissions import NOT_ALLOWED, denial, may
from workflow.due import UNDECIDED_SHOWN
from workflow.errors import forbidden
from workflow.extensions import db
from workflow.services import STALE_MESSAGE, Forbidden, Refused, ServiceError, Stale
from workflow.timeutil import format_local
from workflow.vocabulary import STATE_LABELS, ReportStatus, SubmissionOutcome, TaskKind, TaskState


def safe_next(target: str | None) -> str | None:
    """A redirect target from user input, only if it is a path on this site.

    Browsers drop tabs and newlines and read a backslash as a slash, so
    "/\t/evil.example" would leave the site: any control character or
    backslash disqualifies the target, as does a scheme or a host."""
    from urllib.parse import urlsplit

    if not target or any(ord(ch) < 32 or ch == "\x7f" for ch in target) or "\\" in target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


def require(action: str, obj=None) -> None:
    """403 unless the current user may; the page says why when there is more
    to say than "not allowed" (e.g. separation of duties)."""
    why = denial(current_user, action, obj)
    if why:
        abort(make_response(forbidden(None if why == NOT_ALLOWED else why)))


CONFLICT_MESSAGE = "操作与他人的操作发生冲突，未生效。页面已刷新为最新状态，请确认后重试。"


class Outcome(NamedTuple):
    value: object                 # what the service returned (None on error)
    error: ServiceError | None    # the refusal to show; None: committed


def commit_service(action: Callable[[], object], cleanup: Callable[[], None] | None = None) -> Outcome:
    """Call one service and commit once. Any refusal rolls everything back
    (then ``cleanup`` runs) and comes back as the error to show: a write that
    met a concurrent one as Stale or Refused with a Chinese message; Forbidden
    is a 403. Anything else rolls back and propagates."""
    try:
        value = action()
        db.session.commit()
    except Forbidden as exc:
        _undo(cleanup)
        abort(make_response(forbidden(None if exc.message == NOT_ALLOWED else exc.message)))
    except ServiceError as exc:
        _undo(cleanup)
        return Outcome(None, exc)
    except StaleDataError:
        _undo(cleanup)
        return Outcome(None, Stale(STALE_MESSAGE))
    except IntegrityError:
        _undo(cleanup)
        return Outcome(None, Refused(CONFLICT_MESSAGE))
    except BaseException:
        _undo(cleanup)
        raise
    return Outcome(value, None)


def _undo(cleanup) -> None:
    db.session.rollback()
    if cleanup is not None:
        cleanup()


def register_template_helpers(app: Flask) -> None:
    app.jinja_env.globals.update(may=lambda action, obj=None: may(current_user, action, obj),
                                 STATE_LABELS=STATE_LABELS, TaskState=TaskState, TaskKind=TaskKind,
                                 SubmissionOutcome=SubmissionOutcome, ReportStatus=ReportStatus,
                                 DEADLINE_UNDECIDED=UNDECIDED_SHOWN)
    app.jinja_env.filters["localtime"] = format_local
    app.jinja_env.filters["detail_value"] = detail_value
    app.jinja_env.filters["state_label"] = TaskState.label_of


def detail_value(v) -> str:
    """An audit entry's details value as text: ``k=v，…`` for a mapping, ``a、b`` for a list.

    A filter, not a macro in the page: a macro defined in a template closes a
    reference cycle around the render context, which then holds the request's
    session and every row on the page until the cyclic garbage collector runs —
    in whichever thread allocates next (issue 7)."""
    if isinstance(v, dict):
        return "，".join(f"{k}={detail_value(x)}" for k, x in v.items())
    if isinstance(v, (list, tuple, set, frozenset)):
        return "、".join(str(x) for x in v)
    return str(v)
