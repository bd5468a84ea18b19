from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts and organizations"

    def ready(self) -> None:
        from accounts import access, log_context, schema  # noqa: F401 - registers extensions
        from accounts.models import ApiKey, Organization, Team, User

        access.register(Organization, organization="pk", learners="all")
        access.register(User, owner="pk")
        access.register(Team, owner="members")
        access.register(ApiKey, learners="none")
        log_context.connect()
