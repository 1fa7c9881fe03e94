from __future__ import annotations

from imagesync.redact import REDACTED, redact_headers, redact_url, secrets
from imagesync.stores.registry.auth import Credential


def test_url_loses_user_info_and_secret_parameters() -> None:
    url = "https://user:pw@reg.io/v2/x/blobs/uploads/abc?_state=SECRETSTATE&digest=sha256:1"
    redacted = redact_url(url)
    assert "pw" not in redacted and "SECRETSTATE" not in redacted
    assert "digest=sha256" in redacted


def test_authorization_headers_are_hidden() -> None:
    assert redact_headers({"Authorization": "Bearer x", "Accept": "a"}) == {
        "Authorization": REDACTED,
        "Accept": "a",
    }


def test_known_secrets_and_credential_shapes_are_removed() -> None:
    Credential(username="alice", password="s3cret-password", origin="test")
    text = secrets("login with s3cret-password, header Bearer abc.def.ghi")
    assert "s3cret-password" not in text
    assert "abc.def.ghi" not in text


def test_credential_repr_shows_no_secret() -> None:
    credential = Credential(username="alice", password="hunter2-long", origin="test")
    assert "hunter2" not in repr(credential)
