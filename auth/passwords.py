"""Password hashing. scrypt (werkzeug's default), spelled out so it cannot drift."""
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


def password_problem(password: str) -> str | None:
    """A Chinese explanation of why the password is too weak, or None."""
    if len(password) < MIN_LENGTH:
        return f"密码至少需要 {MIN_LENGTH} 位。"
    if password.isdigit() or password.isalpha():
        return "密码需同时包含字母和数字。"
    return None
