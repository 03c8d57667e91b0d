"""The README's walk-through, through a Python client generated from the served OpenAPI document.

Run by scripts/client-check.sh with the generated package `duet_client` on PYTHONPATH:

    python walkthrough.py http://127.0.0.1:PORT

Every call goes through the generated code with `raise_on_unexpected_status=True`, so a status
the document does not list for an operation fails; every answer is parsed into the generated
models, so a field missing, of another type, or `null` where the document does not allow it
fails; and every parsed model must have no `additional_properties`, so a field the server sends
but the document does not declare fails too. Exits non-zero at the first mismatch.
"""

import re
import sys
import time
import uuid

import httpx

from duet_client import AuthenticatedClient, Client
from duet_client.api.accounts import me, register, user_by_handle
from duet_client.api.conversations import (
    get_conversation,
    get_peer_presence,
    list_conversations,
    open_conversation,
)
from duet_client.api.health import live, ready
from duet_client.api.messages import history, mark_read, send_message
from duet_client.api.sessions import log_in, log_out
from duet_client.api.sync import sync
from duet_client.models import (
    Conversation,
    ConversationPage,
    ErrorBody,
    Health,
    HealthStatus,
    LoginRequest,
    MarkReadRequest,
    Message,
    MessagePage,
    OpenConversationRequest,
    Presence,
    RegisterRequest,
    SendMessageRequest,
    Session,
    SyncPage,
    User,
)
from duet_client.types import Unset

TIMEOUT = httpx.Timeout(10.0)
# Bob's list and sync are eventually consistent: delivery updates them just after a send.
EVENTUALLY_SECONDS = 10.0
MICROSECOND_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def declared_only(model, where):
    """Fails if `model`, or any model inside it, holds a field the document does not declare."""
    extra = getattr(model, "additional_properties", None)
    if extra:
        raise AssertionError(f"{where}: undeclared fields {sorted(extra)}")
    for name in getattr(type(model), "__attrs_attrs__", ()):
        if name.name == "additional_properties":
            continue
        value = getattr(model, name.name)
        for item in value if isinstance(value, list) else [value]:
            if hasattr(item, "additional_properties"):
                declared_only(item, f"{where}.{name.name}")


def call(step, endpoint, status, model, **kwargs):
    """Calls a generated endpoint; asserts the status and the parsed model, and returns it."""
    response = endpoint.sync_detailed(**kwargs)
    if response.status_code != status:
        raise AssertionError(
            f"{step}: expected {status}, got {response.status_code}: {response.content!r}"
        )
    parsed = response.parsed
    if not isinstance(parsed, model):
        raise AssertionError(f"{step}: expected a {model.__name__}, parsed {parsed!r}")
    declared_only(parsed, step)
    print(f"ok  {step}: {status} {model.__name__}")
    return parsed, response


def expect_error(step, endpoint, status, code, **kwargs):
    """Calls a generated endpoint expecting an error, parsed into the generated ErrorBody."""
    body, _ = call(step, endpoint, status, ErrorBody, **kwargs)
    if body.error.code != code:
        raise AssertionError(f"{step}: expected code {code}, got {body.error.code}")
    return body


def check(step, condition, detail):
    if not condition:
        raise AssertionError(f"{step}: {detail}")


def eventually(step, probe):
    deadline = time.monotonic() + EVENTUALLY_SECONDS
    while True:
        found = probe()
        if found is not None:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{step}: not seen within {EVENTUALLY_SECONDS} s")
        time.sleep(0.05)


def walk(base_url):
    anonymous = Client(base_url=base_url, timeout=TIMEOUT, raise_on_unexpected_status=True)
    health, _ = call("GET /health/live", live, 200, Health, client=anonymous)
    check("GET /health/live", health.status == HealthStatus.OK, health)
    call("GET /health/ready", ready, 200, Health, client=anonymous)

    alice, _ = call(
        "register alice", register, 201, User, client=anonymous,
        body=RegisterRequest(handle="alice", password="correct horse", display_name="Alice"),
    )
    check("register alice", (alice.handle, alice.display_name) == ("alice", "Alice"), alice)
    bob, _ = call(
        "register bob", register, 201, User, client=anonymous,
        body=RegisterRequest(handle="Bob", password="battery staple"),
    )
    check("register bob", (bob.handle, bob.display_name) == ("bob", "bob"), bob)
    expect_error(
        "register bob again", register, 409, "handle_taken", client=anonymous,
        body=RegisterRequest(handle="bob", password="battery staple"),
    )

    session, _ = call(
        "log in alice", log_in, 201, Session, client=anonymous,
        body=LoginRequest(handle="alice", password="correct horse"),
    )
    check("log in alice", session.user.id == alice.id, session)
    bob_session, _ = call(
        "log in bob", log_in, 201, Session, client=anonymous,
        body=LoginRequest(handle="bob", password="battery staple"),
    )
    expect_error(
        "log in with a wrong password", log_in, 401, "invalid_credentials", client=anonymous,
        body=LoginRequest(handle="bob", password="wrong password"),
    )
    as_alice = AuthenticatedClient(
        base_url=base_url, token=session.token, timeout=TIMEOUT, raise_on_unexpected_status=True
    )
    as_bob = AuthenticatedClient(
        base_url=base_url, token=bob_session.token, timeout=TIMEOUT,
        raise_on_unexpected_status=True,
    )
    myself, _ = call("GET /v1/me", me, 200, User, client=as_alice)
    check("GET /v1/me", myself.id == alice.id, myself)
    found, _ = call("GET /v1/users/BOB", user_by_handle, 200, User, client=as_alice, handle="BOB")
    check("GET /v1/users/BOB", found.id == bob.id, found)

    opened, _ = call(
        "alice opens the conversation", open_conversation, 201, Conversation, client=as_alice,
        body=OpenConversationRequest(peer_handle="bob"),
    )
    check("open", opened.peer.id == bob.id and opened.last_message is None, opened)
    check("open", (opened.last_seq, opened.unread_count) == (0, 0), opened)
    again, _ = call(
        "bob opens it too", open_conversation, 200, Conversation, client=as_bob,
        body=OpenConversationRequest(peer_handle="alice"),
    )
    check("open again", again.id == opened.id, again)
    conversation = opened.id
    page, _ = call(
        "alice's list", list_conversations, 200, ConversationPage, client=as_alice
    )
    check("alice's list", [c.id for c in page.items] == [conversation], page)
    check("alice's list", page.next_cursor is None, page)

    client_msg_id = str(uuid.uuid4())
    sent, sent_response = call(
        "send", send_message, 201, Message, client=as_alice, id=conversation,
        body=SendMessageRequest(client_msg_id=client_msg_id, body="hi Bob"),
    )
    check("send", (sent.seq, sent.body, sent.sender_id) == (1, "hi Bob", alice.id), sent)
    sent_at = sent_response.content.decode()
    created_at = re.search(r'"created_at":"([^"]+)"', sent_at).group(1)
    check("send", MICROSECOND_TIME.match(created_at), f"created_at {created_at}")
    resent, _ = call(
        "resend the same client_msg_id", send_message, 200, Message, client=as_alice,
        id=conversation,
        body=SendMessageRequest(client_msg_id=client_msg_id, body="hi Bob, again"),
    )
    check("resend", (resent.id, resent.seq, resent.body) == (sent.id, 1, "hi Bob"), resent)
    expect_error(
        "send a blank body", send_message, 422, "validation_failed", client=as_alice,
        id=conversation, body=SendMessageRequest(client_msg_id=str(uuid.uuid4()), body="  "),
    )

    def bob_sees_it():
        page, _ = call("bob's list", list_conversations, 200, ConversationPage, client=as_bob)
        item = next((c for c in page.items if c.id == conversation), None)
        return item if item is not None and item.last_seq == 1 else None

    inbox = eventually("bob's list shows the message", bob_sees_it)
    check("bob's list", inbox.unread_count == 1, inbox)
    check("bob's list", isinstance(inbox.last_message, Message), inbox)
    check("bob's list", inbox.last_message.id == sent.id, inbox)

    messages, _ = call(
        "bob's history", history, 200, MessagePage, client=as_bob, id=conversation, limit=50
    )
    check("history", [m.id for m in messages.items] == [sent.id], messages)
    check("history", messages.items[0].created_at == sent.created_at, messages)
    check("history", messages.has_more is False, messages)

    read, _ = call(
        "bob reads", mark_read, 200, Conversation, client=as_bob, id=conversation,
        body=MarkReadRequest(seq=1),
    )
    check("read", (read.read_seq, read.unread_count, read.last_seq) == (1, 0, 1), read)
    shown, _ = call(
        "bob's conversation", get_conversation, 200, Conversation, client=as_bob,
        id=conversation,
    )
    check("read answer", shown.version == read.version, f"{read.version} vs {shown.version}")
    expect_error(
        "read past the newest", mark_read, 422, "validation_failed", client=as_bob,
        id=conversation, body=MarkReadRequest(seq=2),
    )

    changes, _ = call("bob syncs from 0", sync, 200, SyncPage, client=as_bob, since=0)
    check("sync", [c.id for c in changes.changes] == [conversation], changes)
    synced = changes.changes[0]
    check("sync", (synced.read_seq, synced.last_seq, synced.unread_count) == (1, 1, 0), synced)
    check("sync", synced.version == read.version == changes.cursor, changes)
    check("sync", synced.last_message.created_at == sent.created_at, synced)
    nothing, _ = call(
        "bob syncs from the cursor", sync, 200, SyncPage, client=as_bob, since=changes.cursor
    )
    check("sync again", nothing.changes == [] and nothing.has_more is False, nothing)

    presence, _ = call(
        "alice's presence, as bob", get_peer_presence, 200, Presence, client=as_bob,
        id=conversation,
    )
    check("presence", presence.user_id == alice.id and presence.online is False, presence)
    check("presence", presence.last_seen is None or not isinstance(presence.last_seen, Unset),
          presence)

    stranger = uuid.uuid4()
    error = expect_error(
        "a conversation one is not in", get_conversation, 404, "not_found", client=as_bob,
        id=stranger,
    )
    check("404", error.error.message != "", error)
    call("log out", log_out, 204, type(None), client=as_alice)
    expect_error("the token after logging out", me, 401, "unauthorized", client=as_alice)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: walkthrough.py BASE_URL")
    try:
        walk(sys.argv[1])
    except AssertionError as failure:
        print(f"FAILED  {failure}", file=sys.stderr)
        sys.exit(1)
    print("the generated client walked the README's walk-through")


if __name__ == "__main__":
    main()
