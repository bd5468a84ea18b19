"""Demo organization, teams and users. Safe to run again: it changes nothing twice."""

from __future__ import annotations

from typing import TextIO

from accounts.models import Organization, Role, Team, User

DEMO_ORGANIZATION = ("Northwind Software", "northwind")
DEMO_TEAMS = ["Support Desk", "Account Executives"]
# (email, name, role, teams) — demo-only passwords, printed by `make run`.
DEMO_USERS = [
    ("admin@demo.avataradam.local", "Robin Ellis", Role.ADMIN, []),
    ("manager@demo.avataradam.local", "Maya Patel", Role.MANAGER, DEMO_TEAMS),
    ("alex@demo.avataradam.local", "Alex Kim", Role.LEARNER, ["Support Desk"]),
    ("jordan@demo.avataradam.local", "Jordan Reyes", Role.LEARNER, ["Account Executives"]),
    ("sam@demo.avataradam.local", "Sam Okafor", Role.LEARNER, ["Support Desk"]),
]
DEMO_PASSWORDS = {
    Role.ADMIN: "demo-admin-2026",
    Role.MANAGER: "demo-manager-2026",
    Role.LEARNER: "demo-learner-2026",
}


def seed(stdout: TextIO) -> tuple[Organization, User]:
    """Create (or complete) the demo organization; returns it and its manager."""
    name, slug = DEMO_ORGANIZATION
    # Managers and admins of the demo sign in with a second factor: the demo manager is
    # asked to set one up on first sign-in.
    organization, _ = Organization.objects.get_or_create(
        slug=slug, defaults={"name": name, "require_second_factor": True}
    )
    teams = {
        team_name: Team.objects.get_or_create(organization=organization, name=team_name)[0]
        for team_name in DEMO_TEAMS
    }
    manager = None
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
        if role == Role.MANAGER:
            manager = user
    assert manager is not None
    return organization, manager


def print_sign_ins(stdout: TextIO) -> None:
    stdout.write("Demo sign-ins (demo data only, never use these passwords for real):\n")
    for email, _, role, _ in DEMO_USERS:
        stdout.write(f"  {role.label:<18} {email:<34} {DEMO_PASSWORDS[role]}\n")
    stdout.write(
        "  The admin and the manager set up two-factor sign-in (an authenticator app) on\n"
        "  first sign-in; the admin also sees the audit log and the provider keys.\n"
    )
