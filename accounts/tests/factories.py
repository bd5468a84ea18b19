import factory

from accounts.models import ApiKey, Organization, Role, Team, User

PASSWORD = "correct-horse-battery"


class OrganizationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organization

    name = factory.Sequence(lambda n: f"Organization {n}")
    slug = factory.Sequence(lambda n: f"org-{n}")


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    full_name = factory.Faker("name")
    organization = factory.SubFactory(OrganizationFactory)
    role = Role.LEARNER
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class TeamFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Team

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"Team {n}")


def make_api_key(organization, role=Role.MANAGER, name="CI server"):
    """Create a key directly (services are tested separately); returns (key, full secret)."""
    full_key, prefix, key_hash = ApiKey.generate()
    api_key = ApiKey.objects.create(
        organization=organization, name=name, prefix=prefix, key_hash=key_hash, role=role
    )
    return api_key, full_key


def enrol_second_factor(user):
    """Give `user` a confirmed authenticator; returns (device, recovery codes)."""
    from accounts import second_factor
    from accounts.models import AuthenticatorDevice

    device = AuthenticatorDevice.objects.create(user=user, name="Phone", confirmed=True)
    return device, second_factor._new_recovery_codes(user)


def totp_code(device, steps_from_now=0):
    """The code an authenticator app shows now (or `steps_from_now` 30-second steps away)."""
    totp = device.totp()
    totp.drift = steps_from_now
    return f"{totp.token():06d}"
