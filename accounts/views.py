"""Sign-in and the signed-in landing page."""

from __future__ import annotations

from django import forms
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm


class EmailAuthenticationForm(AuthenticationForm):
    username = forms.EmailField(
        label="Email", widget=forms.EmailInput(attrs={"autofocus": True, "autocomplete": "email"})
    )
    error_messages = {
        # One message whatever was wrong: never hint whether the email exists.
        "invalid_login": "Those sign-in details are not right. Check the email and password "
        "and try again.",
        "inactive": "Those sign-in details are not right. Check the email and password "
        "and try again.",
    }


class SignInView(auth_views.LoginView):
    form_class = EmailAuthenticationForm
    redirect_authenticated_user = True
