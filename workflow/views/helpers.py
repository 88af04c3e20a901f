"""Small helpers shared by the views: the permission check and the one commit-or-refuse path."""
from __future__ import annotations

from typing import Callable, NamedTuple

from flask import abort, make_response
from flask_login import current_user
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from auth.permissions import NOT_ALLOWED, denial
from workflow.errors import forbidden
from workflow.extensions import db
from workflow.services import STALE_MESSAGE, Forbidden, Refused, ServiceError, Stale


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


INVALID_FORM = "表单内容无效，请检查后重试。"


def first_error(form) -> str | None:
    """The first problem of an invalid form (validated here), in Chinese; None if it is valid."""
    if form.validate():
        return None
    for errors in form.errors.values():
        for error in errors:
            return error if isinstance(error, str) else INVALID_FORM
    return INVALID_FORM
