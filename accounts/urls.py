from django.contrib.auth import views as auth_views
from django.urls import path

from accounts import audit_views, notice_views, two_factor_views, views

urlpatterns = [
    path("audit/", audit_views.audit_log, name="audit-log"),
    path("audit/export.csv", audit_views.audit_log_csv, name="audit-log-csv"),
    path("notices/dismiss/", notice_views.dismiss, name="dismiss-notice"),
    path("login/", views.SignInView.as_view(), name="login"),
    path("two-factor/", two_factor_views.manage, name="two-factor-manage"),
    path("two-factor/setup/", two_factor_views.setup, name="two-factor-setup"),
    path("two-factor/verify/", two_factor_views.verify, name="two-factor-verify"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("password/change/", auth_views.PasswordChangeView.as_view(), name="password_change"),
    path(
        "password/change/done/",
        auth_views.PasswordChangeDoneView.as_view(),
        name="password_change_done",
    ),
    path("password/reset/", auth_views.PasswordResetView.as_view(), name="password_reset"),
    path(
        "password/reset/sent/",
        auth_views.PasswordResetDoneView.as_view(),
        name="password_reset_done",
    ),
    path(
        "password/reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path(
        "password/reset/complete/",
        auth_views.PasswordResetCompleteView.as_view(),
        name="password_reset_complete",
    ),
]
