"""Citations as the learner reads them: numbered by first use, each opening the passage
the trainer was given (learners cannot open the knowledge base's files)."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from accounts.models import Role
from accounts.tests.factories import UserFactory
from knowledge.models import Chunk
from knowledge.tests import samples
from knowledge.tests.factories import ingested
from training import sessions
from training.citations import renumbered
from training.tests.test_sessions import say, training_scenario

CITATIONS = [
    {"number": n, "chunk_id": 100 + n, "title": f"Doc {n}", "page": None, "heading": f"H{n}"}
    for n in (1, 2, 3, 4)
]


def test_numbers_follow_first_use_and_uncited_passages_are_left_out():
    text, cited = renumbered("Refunds take 30 days [3]. Exchanges [1][3], or [4, 3].", CITATIONS)
    assert text == "Refunds take 30 days [1]. Exchanges [2][1], or [1, 3]."
    assert [(c.shown, c.number, c.title) for c in cited] == [
        (1, 3, "Doc 3"),
        (2, 1, "Doc 1"),
        (3, 4, "Doc 4"),
    ]  # passage 2 was not cited: not listed; each passage once


def test_code_and_numbers_the_prompt_never_had_are_not_citations():
    text, cited = renumbered("Use `items[2]` and\n```\nx = a[1]\n```\nsee [2] and [9].", CITATIONS)
    assert "`items[2]`" in text
    assert "x = a[1]" in text
    assert text.endswith("see [1] and .")  # [9] named no passage: dropped, not shown
    assert [c.number for c in cited] == [2]


def test_a_reply_citing_nothing_by_number_lists_every_passage_in_prompt_order():
    text, cited = renumbered("Here is what the training materials say: …", CITATIONS)
    assert text == "Here is what the training materials say: …"
    assert [(c.shown, c.number) for c in cited] == [(1, 1), (2, 2), (3, 3), (4, 4)]


@pytest.fixture
def cited_reply(alice, bob, acme):
    ingested(alice, samples.RETURNS_POLICY_HTML.encode(), "policies.html")
    session = sessions.start_session(actor=bob, scenario_id=training_scenario(acme).pk)
    reply = say(bob, session, "How many days do customers have to return unopened items?")
    assert reply.citations
    return session, reply


def _client(user):
    client = Client()
    client.force_login(user)
    return client


def test_the_learner_opens_each_cited_passage_from_the_conversation(cited_reply, bob):
    session, reply = cited_reply
    page = _client(bob).get(f"/sessions/{session.pk}/").content.decode()
    links = re.findall(rf'href="(/sessions/{session.pk}/messages/{reply.pk}/sources/\d+/)"', page)
    _, cited = renumbered(reply.text, reply.citations)
    assert len(links) == len(cited) == len(set(links))  # one link per passage, no repeats

    first = reply.citations[0]
    chunk = Chunk.objects.get(pk=first["chunk_id"])
    response = _client(bob).get(f"/sessions/{session.pk}/messages/{reply.pk}/sources/1/")
    assert response.status_code == 200
    body = response.content.decode()
    assert "policies" in body  # the document's title
    assert "Returns" in body  # its heading trail
    assert chunk.text.split()[0] in body
    assert "Download the whole file" not in body  # learners get the passage, not the file


def test_a_manager_may_also_download_the_file(cited_reply, alice):
    session, reply = cited_reply
    response = _client(alice).get(f"/sessions/{session.pk}/messages/{reply.pk}/sources/1/")
    assert response.status_code == 200
    assert "Download the whole file" in response.content.decode()


def test_others_and_numbers_the_reply_never_cited_get_nothing(cited_reply, acme, bob, mallory):
    session, reply = cited_reply
    url = f"/sessions/{session.pk}/messages/{reply.pk}/sources/1/"
    dave = UserFactory(email="dave@acme.test", organization=acme, role=Role.LEARNER)
    assert _client(dave).get(url).status_code == 404  # another learner's conversation
    assert _client(mallory).get(url).status_code == 404  # another organization
    missing = f"/sessions/{session.pk}/messages/{reply.pk}/sources/99/"
    assert _client(bob).get(missing).status_code == 404


def test_a_passage_removed_since_says_so(cited_reply, bob):
    session, reply = cited_reply
    Chunk.objects.filter(pk=reply.citations[0]["chunk_id"]).delete()
    response = _client(bob).get(f"/sessions/{session.pk}/messages/{reply.pk}/sources/1/")
    assert response.status_code == 410
    assert "has been removed from the knowledge base" in response.content.decode()


NETWORK_GUIDE = """# Network guide

## Interfaces

Each interface is configured in /etc/network/interfaces. For a DHCP address on eth0:

```
auto eth0
iface eth0 inet dhcp
```

Restart networking after editing the interfaces file.
"""


def test_the_offline_trainer_quotes_code_whole_and_the_page_shows_it_as_code(alice, bob, acme):
    from training.rendering import prepare_for_page

    ingested(alice, NETWORK_GUIDE.encode(), "network.md")
    session = sessions.start_session(actor=bob, scenario_id=training_scenario(acme).pk)
    reply = say(bob, session, "How do I configure a DHCP interface for eth0?")
    assert "```\nauto eth0\niface eth0 inet dhcp\n```" in reply.text, reply.text
    prepare_for_page(reply)
    assert "<pre><code>auto eth0\niface eth0 inet dhcp\n</code></pre>" in reply.html, reply.html
    assert "interface is configured" in reply.text  # the sentences around it, as sentences
