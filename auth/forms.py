from workflow.views.forms import FlaskForm  # the one base: Chinese messages, cleaned text
from wtforms import PasswordField, StringField, SubmitField
from wtforms.validators import DataRequired, EqualTo, Length


class LoginForm(FlaskForm):
    username = StringField("用户名", validators=[DataRequired("请输入用户名。"), Length(max=64)])
    password = PasswordField("密码", validators=[DataRequired("请输入密码。")])
    submit = SubmitField("登录")


class PasswordForm(FlaskForm):
    current = PasswordField("当前密码", validators=[DataRequired("请输入当前密码。")])
    new = PasswordField("新密码", validators=[DataRequired("请输入新密码。")])
    confirm = PasswordField("确认新密码", validators=[EqualTo("new", "两次输入的新密码不一致。")])
    submit = SubmitField("修改密码")
