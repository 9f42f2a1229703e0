"""Hooks for schemathesis (schemathesis.toml names this module): Matrix identifiers, batch items, Idempotency-Key.

Without them schemathesis knows nothing of `matrix-user-id` and `matrix-room-id-or-alias` and
sends random strings that the gateway refuses at the schema (400), so the fuzzing never gets
past validation. These strategies mix the simulated homeserver's fixture (the "actions" one,
dev/homeserver/state.ts: users and rooms that exist, are deactivated, banned, blocked,
private...) with well-formed identifiers that exist nowhere, on the local server and on others.
Negative mode still sends malformed values: it ignores formats. A batch item's `room` and
`user_id` have no format in the schema; a body hook gives them the same identifiers half the time.
"""

import os

from hypothesis import strategies as st

import schemathesis

SERVER_NAME = "test.local"

# dev/homeserver/state.ts, fixture "actions".
FIXTURE_USERS = [
    "@admin:test.local",
    "@alice:test.local",
    "@dave:test.local",  # deactivated
    "@bert:test.local",  # banned from #fresh-public and #fresh-private-admin
    "@sue:test.local",
    "@tom:test.local",  # invited
    "@fay:test.local",  # left
    "@eli:test.local",
    "@ghost:test.local",  # does not exist
]
FIXTURE_ROOMS = [
    "!bpxxXtPLLmJbRmcGfk:test.local",
    "#fresh-public:test.local",
    "!tPeOOnSDqBnlAKUrun:test.local",
    "#fresh-private-admin:test.local",
    "!FXUrsgbXpHsoHAMPXA:test.local",
    "#fresh-private-not-in-room:test.local",
    "!HFxvvCRNIVuDMNjMdn:test.local",
    "#fresh-private-admin-without-invite-power:test.local",
    "!ZRMWbGmkWwKWsVkIkp:test.local",
    "#blocked-room:test.local",
    "!ixJvYqxBdQSppzRyoL:test.local",
    "!simSupportSpace:test.local",
    "#support:test.local",
    "#helpdesk:test.local",
    "#servicedesk:test.local",
    "#nowhere:test.local",  # no such alias
    "!NoSuchRoomAtAll:test.local",  # no such room
    "!roomVersion12WithoutServer",
]

# Printable ASCII except ':' (the grammar of user localparts and room ID opaque parts).
_ascii_local = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters=":"),
    min_size=1,
    max_size=40,
)
# Alias localparts: any Unicode but ':', controls, separators and format characters.
_alias_local = st.text(
    alphabet=st.characters(exclude_categories=("Cc", "Cf", "Cs", "Zs", "Zl", "Zp"), exclude_characters=":"),
    min_size=1,
    max_size=40,
)
_server = st.one_of(
    st.just(SERVER_NAME),
    st.sampled_from(["example.org", "matrix.org:8448", "[::1]:8448", "127.0.0.1"]),
    st.from_regex(r"\A[a-z0-9-]{1,20}(\.[a-z]{2,6}){0,2}(:[0-9]{1,5})?\Z"),
)


def _fits(value: str) -> bool:
    return len(value.encode("utf-8")) <= 255


user_ids = st.one_of(
    st.sampled_from(FIXTURE_USERS),
    st.builds(lambda local, server: f"@{local}:{server}", _ascii_local, _server).filter(_fits),
)
room_ids_or_aliases = st.one_of(
    st.sampled_from(FIXTURE_ROOMS),
    st.builds(lambda local, server: f"!{local}:{server}", _ascii_local, _server).filter(_fits),
    st.builds(lambda local, server: f"#{local}:{server}", _alias_local, _server).filter(_fits),
)

schemathesis.openapi.format("matrix-user-id", user_ids)
schemathesis.openapi.format("matrix-room-id-or-alias", room_ids_or_aliases)


def _with_ids(body, ids):
    items = []
    for item, (room, user_id) in zip(body["items"], ids):
        if isinstance(item, dict):
            item = dict(item)
            # Only where the schema's string is: a negative case's wrong type stays wrong.
            if isinstance(item.get("room"), str):
                item["room"] = room
            if isinstance(item.get("user_id"), str):
                item["user_id"] = user_id
        items.append(item)
    return {**body, "items": items}


@schemathesis.hook.apply_to(path="/v1/batch", method="POST")
def flatmap_body(ctx, body):
    """A batch item's `room` and `user_id` are plain strings in the schema; half the time, Matrix IDs."""
    if not isinstance(body, dict) or not isinstance(body.get("items"), list):
        return st.just(body)
    size = len(body["items"])
    ids = st.lists(st.tuples(room_ids_or_aliases, user_ids), min_size=size, max_size=size)
    return st.one_of(st.just(body), ids.map(lambda chosen: _with_ids(body, chosen)))


# openapi.yaml mentions the Idempotency-Key header only in prose, so schemathesis would never
# send it: a few reused keys (replays and "reused with another request"), fresh ones, and
# malformed ones (empty, too long, not printable ASCII).
# Half the requests go without one.
idempotency_keys = st.one_of(
    st.none(),
    st.none(),
    st.none(),
    st.sampled_from(["fuzz-key-1", "fuzz-key-2", "fuzz-key-3"]),
    st.uuids().map(str),
    # The HTTP client refuses to send a value with leading or trailing whitespace.
    st.one_of(
        st.just(""),
        st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=200, max_size=300),
        st.text(alphabet=st.characters(min_codepoint=0xA1, max_codepoint=0xFF), min_size=1, max_size=8),
    ),
)


def _with_key(case, key):
    headers = {name: value for name, value in (case.headers or {}).items() if name.lower() != "idempotency-key"}
    if key is not None:
        headers["Idempotency-Key"] = key
    case.headers = headers
    return case


# FUZZ_IDEMPOTENCY_KEYS=0 leaves the header out (docs/fuzzing.md, open finding F1).
if os.environ.get("FUZZ_IDEMPOTENCY_KEYS", "1") != "0":

    @schemathesis.hook.apply_to(method="POST").apply_to(method="DELETE")
    def flatmap_case(ctx, case):
        return idempotency_keys.map(lambda key: _with_key(case, key))
