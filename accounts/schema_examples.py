"""OpenAPI examples for the accounts API (checked against the schema by a test)."""

from __future__ import annotations

from accounts.schema import register_examples

WHEN = "2026-11-25T09:30:00Z"
ACCESS = "eyJhbGciOiJIUzI1NiJ9.eyJ0b2tlbl90eXBlIjoiYWNjZXNzIn0.c2ln"
REFRESH = "eyJhbGciOiJIUzI1NiJ9.eyJ0b2tlbl90eXBlIjoicmVmcmVzaCJ9.c2ln"
TEAM = {"id": 3, "name": "Support Desk"}
USER = {
    "id": 12, "email": "alex@northwind.example", "full_name": "Alex Kim", "role": "learner",
    "is_active": True, "teams": [TEAM], "date_joined": WHEN,
}  # fmt: skip
API_KEY = {
    "id": 4, "name": "CRM sync", "prefix": "1f9a2c7e", "role": "manager", "created_at": WHEN,
    "last_used_at": None, "revoked_at": None,
}  # fmt: skip

register_examples({
    "TokenObtainPairRequest": {"email": "maya@northwind.example", "password": "correct horse",
                               "otp": "492039"},
    "TokenObtainPair": {"access": ACCESS, "refresh": REFRESH},
    "TokenRefreshRequest": {"refresh": REFRESH},
    "TokenRefresh": {"access": ACCESS + "bmV3", "refresh": REFRESH + "bmV3"},
    "LogoutRequestRequest": {"refresh": REFRESH},
    "Output": {"id": 12, "email": "alex@northwind.example", "full_name": "Alex Kim",
               "role": "learner", "organization": {"id": 1, "name": "Northwind Software"},
               "teams": [TEAM], "api_key": None},
    "ApiKey": API_KEY,
    "ApiKeyCreateRequestRequest": {"name": "CRM sync", "role": "manager"},
    "ApiKeyCreated": {**API_KEY, "key": "aa_1f9a2c7e_Qm9vZGxlcy1hcmUtbm90LWtleXMtYnV0LXRoaXMtaXM"},
    "Team": {"id": 3, "name": "Support Desk", "members": [12, 14], "created_at": WHEN},
    "TeamWriteRequestRequest": {"name": "Night shift", "members": [12, 14]},
    "PatchedTeamWriteRequestRequest": {"members": [12]},
    "User": USER,
    "UserCreateRequestRequest": {"email": "sam@northwind.example", "full_name": "Sam Okafor",
                                 "role": "learner", "teams": [3]},
    "PatchedUserUpdateRequestRequest": {"role": "manager", "teams": [3, 5]},
    "Organization": {"id": 1, "name": "Northwind Software", "slug": "northwind",
                     "require_second_factor": True, "managers_see_audit_log": False,
                     "created_at": WHEN},
    "PatchedOrganizationRequest": {"managers_see_audit_log": True},
    "OrganizationCreateRequestRequest": {"name": "Contoso Ltd", "slug": "contoso"},
    "AuditEvent": {"id": 981, "created_at": WHEN, "actor_label": "maya@northwind.example",
                   "actor_user": 2, "actor_api_key": None, "action": "assignment.created",
                   "target_type": "training.assignment", "target_id": "17",
                   "changes": {"scenario": "Renewal call", "team": "Support Desk", "learner": ""},
                   "ip": "203.0.113.7", "user_agent": "Mozilla/5.0",
                   "request_id": "5b0c2f7e-1d2a-4c8e-9f4e-3a6b1c2d9e10"},
})  # fmt: skip
