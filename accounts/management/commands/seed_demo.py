"""Load the demo organization, teams and users. Safe to run again: it changes nothing twice."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction

from accounts.models import Organization, Role, Team, User

DEMO_ORGANIZATION = ("Northwind Health Supplies", "northwind")
DEMO_TEAMS = ["Field Sales", "Customer Care"]
# (email, name, role, teams) — demo-only passwords, printed by `make run`.
DEMO_USERS = [
    ("manager@demo.avataradam.local", "Maya Patel", Role.MANAGER, DEMO_TEAMS),
    ("alex@demo.avataradam.local", "Alex Kim", Role.LEARNER, ["Field Sales"]),
    ("jordan@demo.avataradam.local", "Jordan Reyes", Role.LEARNER, ["Field Sales"]),
    ("sam@demo.avataradam.local", "Sam Okafor", Role.LEARNER, ["Customer Care"]),
]
DEMO_PASSWORDS = {Role.MANAGER: "demo-manager-2026", Role.LEARNER: "demo-learner-2026"}


class Command(BaseCommand):
    help = "Create (or complete) the demo organization, its teams and demo users."

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        name, slug = DEMO_ORGANIZATION
        organization, _ = Organization.objects.get_or_create(slug=slug, defaults={"name": name})
        teams = {
            team_name: Team.objects.get_or_create(organization=organization, name=team_name)[0]
            for team_name in DEMO_TEAMS
        }
        for email, full_name, role, team_names in DEMO_USERS:
            user = User.objects.filter(email=email).first()
            if user is None:
                user = User.objects.create_user(
                    email,
                    DEMO_PASSWORDS[role],
                    full_name=full_name,
                    organization=organization,
                    role=role,
                )
            for team_name in team_names:
                teams[team_name].members.add(user)
        self.stdout.write("Demo sign-ins (demo data only, never use these passwords for real):")
        for email, _, role, _ in DEMO_USERS:
            self.stdout.write(f"  {role.label:<8} {email:<34} {DEMO_PASSWORDS[role]}")
