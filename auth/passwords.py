"""Password hashing. scrypt (werkzeug's default), spelled out so it cannot drift."""
import secrets

from flask import current_app, has_app_context
from werkzeug.security import check_password_hash, generate_password_hash

METHOD = "scrypt:32768:8:1"
MIN_LENGTH = 8


def hash_password(password: str) -> str:
    # The test suite lowers the work factor (PASSWORD_HASH_METHOD) to stay fast;
    # the stored hash names its own parameters, so verification needs no setting.
    method = current_app.config.get("PASSWORD_HASH_METHOD", METHOD) if has_app_context() else METHOD
    return generate_password_hash(password, method=method)


def verify_password(password_hash: str, password: str) -> bool:
    return check_password_hash(password_hash, password)


_DUMMY_HASHES: dict[str, str] = {}


def verify_password_or_dummy(password_hash: str | None, password: str) -> bool:
    """``verify_password``, or for a user who does not exist (``None``) the same
    work against a throw-away hash of the current method, so that the answer
    takes as long for an unknown name as for a real one. Always False then."""
    if password_hash is not None:
        return verify_password(password_hash, password)
    method = current_app.config.get("PASSWORD_HASH_METHOD", METHOD) if has_app_context() else METHOD
    if method not in _DUMMY_HASHES:
        _DUMMY_HASHES[method] = generate_password_hash(secrets.token_urlsafe(16), method=method)
    check_password_hash(_DUMMY_HASHES[method], password)
    return False


def password_problem(password: str) -> str | None:
    """A Chinese explanation of why the password is too weak, or None."""
    if len(password) < MIN_LENGTH:
        return f"密码至少需要 {MIN_LENGTH} 位。"
    # What the form promises: at least one letter and one digit (symbols do not count as either).
    if not (any(ch.isalpha() for ch in password) and any(ch.isdigit() for ch in password)):
        return "密码需同时包含字母和数字。"
    return None
