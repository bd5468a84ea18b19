"""Load the demo content of every app. Safe to run again: it changes nothing twice."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction

from accounts import demo_content as accounts_demo
from knowledge import demo_content as knowledge_demo
from training import demo_content as training_demo
from voice import demo_content as voice_demo


class Command(BaseCommand):
    help = "Create (or complete) the demo organization, its people and its content."

    def handle(self, *args: Any, **options: Any) -> None:
        with transaction.atomic():
            organization, manager = accounts_demo.seed(self.stdout)
            knowledge_demo.seed(manager, self.stdout)
            training_demo.seed(organization, manager, self.stdout)
            voice_demo.seed(organization, self.stdout)
        accounts_demo.print_sign_ins(self.stdout)
