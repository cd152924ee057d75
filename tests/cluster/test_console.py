"""The web console in a real browser (Playwright driving Debian's chromium, headless) against a
live governed cluster: real node and gateway processes, mutual TLS, the browser presenting the
cluster's client certificate.

The initiator logs in with their key file, creates a Solana wallet and a transfer; two treasury
approvers (two browser contexts) and a risk approver approve it from the request page; it is
signed, and the signature verifies under the wallet's key. A second transfer is rejected by an
approver from its page (signed in the browser); every node then refuses it for good. Each page shows the intent from the
data it hashes: a page whose intent and digest disagree (tampered here in the browser, as a
compromised gateway would serve it) is refused and no approval is sent. An admin engages the kill
switch and two admins release it. With a `monitor` on anvil, a deposit appears in the monitoring
view with its confirmations (which grow as blocks are mined) and the webhook delivery is listed,
without a reload. Every page is screenshotted (build/console-screenshots/, a CI artifact) and
checked with axe-core (labels, contrast, keyboard: WCAG 2 A/AA rules).
"""

from __future__ import annotations

import base64
import http.server
import json
import os
import shutil
import signal
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from tests.cluster.conftest import wait_until
from tests.cluster.test_governance import GovCluster
from tholos.client import Client
from tholos.cluster.demo import transfer
from tholos.cluster.governance_init import user_key_file
from tholos.governance import SigningRequest, approve
from tholos.governance.rejections import REJECTION_TAG, reject
from tholos.governance.requests import APPROVAL_TAG

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
playwright_sync = pytest.importorskip("playwright.sync_api")

ROOT = Path(__file__).resolve().parents[2]
SHOTS = Path(os.environ.get("THOLOS_CONSOLE_SCREENSHOTS", ROOT / "build" / "console-screenshots"))
AXE = Path(__file__).parent / "vendor" / "axe.min.js"
AMOUNT = 20_000  # above 10,000: the genesis rule "large" wants 2 from treasury and 1 from risk
BLOCKHASH = "4uQeVj5tqViQh7yWWGStvkEG1Zmhx6uasJtWCJziofM"
DESTINATION = "9xQeWvG816bUx9EPjHmaT23yvVM2ZWbrrpZb9PusVFin"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GovCluster]:
    c = GovCluster(tmp_path_factory.mktemp("console") / "c", 4, 2)
    try:
        for i in range(1, c.n + 1):
            c.start_node(i)
        c.start_gateway()
        # A browser test runs beside other work on small CI machines: allow a slow start.
        wait_until(lambda: c.get("/v1/health")["nodes_up"] >= c.n, 180, "cluster healthy")
        yield c
    finally:
        c.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    exe = shutil.which("chromium")
    if exe is None:
        pytest.skip("no chromium on PATH (Debian package chromium)")
    with playwright_sync.sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=exe, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            yield b
        finally:
            b.close()


class Person:
    """One user at their own browser (own context: own cookies, own IndexedDB key store)."""

    def __init__(self, browser: Any, c: GovCluster, user: str) -> None:
        self.c, self.user = c, user
        self.ctx = browser.new_context(
            ignore_https_errors=True,  # the gateway's certificate is from the cluster's own CA
            client_certificates=[
                {
                    "origin": c.url,
                    "certPath": str(c.cd.client_tls.cert),
                    "keyPath": str(c.cd.client_tls.key),
                }
            ],
            viewport={"width": 1280, "height": 900},
        )
        self.page = self.ctx.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def go(self, path: str) -> Any:
        self.page.goto(self.c.url + "/console" + path)
        return self.page

    def login(self) -> None:
        page = self.go("/login")
        page.get_by_label("User id").fill(self.user)
        page.get_by_label("Key file").set_input_files(str(user_key_file(self.c.cd.root, self.user)))
        page.get_by_role("button", name="Log in").click()
        self.wait_url("**/console/")
        assert page.locator("#whoami").inner_text() == self.user

    def wait_url(self, pattern: str) -> None:
        """Wait for the page script to navigate; on a refusal, fail with what the page says."""
        try:
            self.page.wait_for_url(pattern, timeout=60_000)
        except playwright_sync.TimeoutError:
            raise AssertionError(self.page.locator("#status").inner_text()) from None

    def expect_status(self, text: str) -> None:
        """Wait for the page's live status line (errors from the server land there)."""
        status = self.page.locator("#status")
        playwright_sync.expect(status).not_to_have_class("status error")
        playwright_sync.expect(status).to_contain_text(text)


def shoot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def accessible(page: Any, name: str) -> None:
    """axe-core over the page (WCAG 2 A and AA rules): no violations; every control is reachable
    with the Tab key."""
    # Evaluated over the DevTools protocol: the console's CSP (script-src 'self') stays in force.
    page.evaluate(AXE.read_text() + "\n;void 0")
    result = page.evaluate(
        "async () => await axe.run(document, {runOnly: {type: 'tag', values: "
        "['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})"
    )
    problems = [
        f"{v['id']}: {v['help']} ({[n['target'] for n in v['nodes']][:3]})"
        for v in result["violations"]
    ]
    assert not problems, (name, problems)
    controls = page.evaluate(
        "() => Array.from(document.querySelectorAll('a[href], button, input, select, textarea'))"
        ".filter(e => !e.closest('[hidden]') && !e.disabled && e.offsetParent !== null)"
        ".filter(e => e.type !== 'radio' || e.checked).length"
    )
    reached = set()
    page.locator("body").focus()
    for _ in range(controls + 2):
        page.keyboard.press("Tab")
        reached.add(page.evaluate("() => document.activeElement.outerHTML.slice(0, 120)"))
    assert len(reached) >= controls, (name, controls, len(reached))


def visit(p: Person, path: str, name: str) -> Any:
    page = p.go(path)
    shoot(page, name)
    accessible(page, name)
    return page


def test_console_transfer_approvals_and_kill_switch(cluster: GovCluster, browser: Any) -> None:
    c = cluster
    initiator = Person(browser, c, "initiator")

    # Not logged in: pages send the browser to the login page; a POST without a session is 401.
    page = initiator.go("/")
    assert page.url.endswith("/console/login")
    shoot(page, "01-login")
    accessible(page, "login")
    # Someone else's key file: the challenge signature does not verify, no session opens.
    page.get_by_label("User id").fill("initiator")
    page.get_by_label("Key file").set_input_files(str(user_key_file(c.cd.root, "approver-1")))
    page.get_by_role("button", name="Log in").click()
    playwright_sync.expect(page.locator("#status")).to_contain_text("does not verify")
    assert not initiator.ctx.cookies()
    initiator.login()
    assert page.evaluate("() => crypto.subtle !== undefined && window.isSecureContext")
    key = page.evaluate("async () => await tholosConsole.loadKey('initiator')")
    assert key is not None
    assert page.evaluate(
        "async () => { const k = await tholosConsole.loadKey('initiator');"
        " return [k.extractable, k.algorithm.name, k.usages.join()]; }"
    ) == [False, "Ed25519", "sign"]

    # A POST without the CSRF header is refused and changes nothing.
    wallets = c.get("/v1/wallets")["total"]
    r = page.evaluate(
        "async () => { const r = await fetch('/console/wallets', {method: 'POST', headers: "
        "{'Content-Type': 'application/json'}, body: JSON.stringify({chain: 'solana', "
        "network: 'localnet'})}); return [r.status, await r.text()]; }"
    )
    assert r[0] == 403 and "CSRF" in r[1], r
    assert c.get("/v1/wallets")["total"] == wallets

    visit(initiator, "/", "02-dashboard")

    # The initiator creates a Solana wallet; its page shows deposit addresses with QR codes.
    page = visit(initiator, "/wallets", "03-wallets")
    page.get_by_label("Chain").select_option("solana")
    page.get_by_label("Network").fill("localnet")
    page.get_by_label("Label (optional)").fill("hot")
    page.get_by_role("button", name="Create wallet").click()
    initiator.wait_url("**/console/wallets/*")
    wallet_id = page.locator("#wallet-id").inner_text()
    listed = c.get(f"/v1/wallets/{wallet_id}")
    assert page.locator("code.address").first.inner_text() == listed["address"]
    assert page.locator(".qr svg").count() == 1  # a threshold ed25519 key: address 0 only
    shoot(page, "04-wallet")
    accessible(page, "wallet")

    # A transfer built in the console: the review shows the parsed intent before signing.
    page = visit(initiator, f"/transfers/new?wallet_id={wallet_id}", "05-transfer-new")
    page.get_by_label("Destination").fill(DESTINATION)
    page.get_by_label("Amount (base units").fill(str(AMOUNT))
    page.get_by_label("Solana: recent blockhash").fill(BLOCKHASH)
    page.get_by_role("button", name="Review").click()
    initiator.expect_status("Check the transaction")
    review = page.locator("#review")
    assert review.locator("tr.destination td.to").inner_text() == DESTINATION
    assert review.locator("tr.destination td.amount").inner_text() == str(AMOUNT)
    assert "solana" in review.locator("dd.chain").inner_text()
    review_digest = page.locator("#review-digest").inner_text()
    shoot(page, "06-transfer-review")
    page.get_by_role("button", name="Sign and submit").click()
    initiator.wait_url("**/console/requests/*")
    request_id = page.url.rsplit("/", 1)[1]
    assert page.locator("#request-status").inner_text() == "awaiting-approval"
    assert "large" in page.locator(".rule").first.inner_text()
    digest = page.locator("#digest").inner_text()
    assert c.get(f"/v1/signing-requests/{request_id}")["digest"] == digest
    shoot(page, "07-request-awaiting")
    accessible(page, "request")
    assert page.get_by_role("button", name="Approve").count() == 0  # the initiator may not

    assert digest == review_digest  # what the initiator signed is what approvers see

    # Two treasury approvers in two browser contexts, then risk: each approves in the browser.
    for user, left in (("approver-1", "awaiting"), ("approver-2", "awaiting"), ("risk-1", "")):
        p = Person(browser, c, user)
        p.login()
        pg = p.go(f"/requests/{request_id}")
        assert pg.locator("#digest").inner_text() == digest
        assert pg.locator("tr.destination td.to").inner_text() == DESTINATION
        # The page rebuilds the request digest itself from the intent it shows; it is the
        # digest the CLI computes from the raw request, and what the browser signs is the
        # approval the CLI makes (Ed25519 is deterministic): same bytes, same signature.
        raw = SigningRequest.model_validate_json(
            json.dumps(c.get(f"/v1/signing-requests/{request_id}/raw")["request"])
        )
        assert pg.evaluate("async () => await tholosConsole.digestOf('signed-request')") == (
            raw.digest().hex()
        )
        expected = approve(raw, user, c.key_of(user))
        message = (APPROVAL_TAG + raw.digest()).hex()
        made = pg.evaluate(f"async () => await tholosConsole.sign('{user}', '{message}')")
        assert made == expected.signature
        if user == "approver-1":
            _tampered_pages_are_refused(c, p, request_id)
            pg = p.go(f"/requests/{request_id}")
        pg.get_by_role("button", name="Approve").click()
        pg.wait_for_load_state()
        playwright_sync.expect(pg.locator("#approvers")).to_contain_text(user)
        if left:
            playwright_sync.expect(pg.locator("#request-status")).to_contain_text(left)
        assert not p.errors, p.errors
        p.ctx.close()
    done = c.get(f"/v1/signing-requests/{request_id}")
    assert done["status"] == "signed", done
    assert sorted(done["approvals"]) == ["approver-1", "approver-2", "risk-1"]
    _verify_solana(done, listed)
    _rejected_in_the_browser(c, browser, listed)
    page = initiator.go(f"/requests/{request_id}")
    playwright_sync.expect(page.locator("#request-status")).to_have_text("signed")
    assert page.locator("#txid").inner_text() == done["transaction"]["txid"]
    shoot(page, "08-request-signed")
    visit(initiator, "/requests", "09-requests")

    # An admin engages the kill switch; two admins release it (admin quorum 2).
    admin = Person(browser, c, "admin-1")
    admin.login()
    page = visit(admin, "/killswitch", "10-killswitch-off")
    page.get_by_label("Reason").fill("console drill")
    page.get_by_role("button", name="Engage the kill switch").click()
    admin.wait_url("**/console/killswitch")
    playwright_sync.expect(page.locator("#kill-state")).to_contain_text("ENGAGED")
    states = c.get("/v1/governance")["nodes"]
    assert all(s.get("kill_switch") for s in states.values()), states
    shoot(page, "11-killswitch-engaged")
    page.get_by_role("button", name="Propose and sign the release").click()
    admin.expect_status("open")
    admin2 = Person(browser, c, "admin-2")
    admin2.login()
    page = visit(admin2, "/policies", "12-policies-pending")
    page.get_by_text("What version 1 changes").click()
    # Shown from the document the browser hashes: only the release flag and the note change.
    playwright_sync.expect(page.locator("p.changes").first).to_have_text(
        "Changes from version 0: note, release_kill_switch."
    )
    # A signing message from the server that is not the one of the document shown: refused.
    approve_v1 = page.get_by_role("button", name="Approve version 1 with my key")
    approve_v1.evaluate("b => { b.dataset.message = b.dataset.message.slice(0, -2) + '00'; }")
    approve_v1.click()
    playwright_sync.expect(page.locator("#status")).to_contain_text("refused to sign")
    (prop,) = c.get("/v1/governance/proposals")["proposals"]
    assert [x["signer"] for x in prop["signatures"]] == ["admin-1"], prop["signatures"]
    page = admin2.go("/policies")
    page.get_by_role("button", name="Approve version 1 with my key").click()
    admin2.wait_url("**/console/policies")
    playwright_sync.expect(page.locator(".proposal-status").first).to_have_text("adopted")
    states = c.get("/v1/governance")["nodes"]
    assert not any(s.get("kill_switch") for s in states.values()), states
    page = visit(admin2, "/killswitch", "13-killswitch-released")
    playwright_sync.expect(page.locator("#kill-state")).to_contain_text("Off")

    visit(admin2, "/users", "14-users")
    visit(admin2, "/policies", "15-policies")
    page = visit(admin2, "/audit", "16-audit")
    page.get_by_role("button", name="Read and verify the audit chains").click()
    admin2.expect_status("verified")
    oks = page.locator("td.audit-ok").all_inner_texts()
    assert oks == ["yes"] * c.n, oks
    shoot(page, "17-audit-verified")
    accessible(page, "audit-verified")

    # Logging out ends the session on the server: the old cookie opens nothing.
    cookie = next(k for k in admin2.ctx.cookies() if k["name"] == "tholos_console")
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict"
    page.get_by_role("button", name="Log out").click()
    admin2.wait_url("**/console/login")
    admin2.ctx.add_cookies([cookie])
    page = admin2.go("/")
    assert page.url.endswith("/console/login")
    for p in (initiator, admin, admin2):
        assert not p.errors, p.errors


def _rejected_in_the_browser(c: GovCluster, browser: Any, wallet: dict[str, Any]) -> None:
    """A second transfer (submitted by the initiator's client) rejected by approver-2 from the
    request page: the browser signs what the SDK signs (Ed25519 is deterministic), every node
    refuses the request from then on, and a treasury approval after it is refused (409)."""
    with Client(c.url, c.cd.client_tls) as sdk:
        other = transfer(sdk, c.cluster_id, wallet, 5_000, c.cd.root)
    p = Person(browser, c, "approver-2")
    p.login()
    pg = visit(p, f"/requests/{other}", "08b-request-to-reject")
    raw = SigningRequest.model_validate_json(
        json.dumps(c.get(f"/v1/signing-requests/{other}/raw")["request"])
    )
    message = (REJECTION_TAG + raw.digest()).hex()
    made = pg.evaluate(f"async () => await tholosConsole.sign('approver-2', '{message}')")
    assert made == reject(raw, "approver-2", c.key_of("approver-2")).signature
    pg.get_by_role("button", name="Reject").click()
    playwright_sync.expect(pg.locator("#request-status")).to_have_text("rejected")
    assert pg.get_by_role("button", name="Approve").count() == 0
    assert pg.get_by_role("button", name="Reject").count() == 0
    verdicts = pg.locator("td.verdict").all_inner_texts()
    assert len(verdicts) == c.n and all("rejected by approver-2" in v for v in verdicts), verdicts
    shoot(pg, "08c-request-rejected")
    shown = c.get(f"/v1/signing-requests/{other}")
    assert shown["status"] == "rejected" and shown["error"] == "rejected by approver-2", shown
    for i in range(1, c.n + 1):
        db = sqlite3.connect(c.cd.root / f"node-{i}" / "governance.db")
        row = db.execute(
            "SELECT status, reason FROM journal WHERE request_id = ?", (other,)
        ).fetchone()
        db.close()
        assert row == ("refused", "rejected by approver-2"), (i, row)
    late = approve(raw, "approver-1", c.key_of("approver-1")).model_dump(mode="json")
    res = c.post(f"/v1/signing-requests/{other}/approvals", {"approval": late}, expect=409)
    assert res["error"]["code"] == "request_closed", res
    assert not p.errors, p.errors
    p.ctx.close()


def _tampered_pages_are_refused(c: GovCluster, p: Person, request_id: str) -> None:
    """A gateway that shows one intent and hands over the digest of another gets nothing: the
    page rebuilds the digest from the intent it shows, refuses, and sends no approval."""
    posts: list[str] = []
    p.page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    approve_button = p.page.get_by_role("button", name="Approve")
    # 1. The intent shown (and hashed) is not the one the digest covers: another amount.
    changed = p.page.evaluate(
        """(amount) => {
          const el = document.getElementById('signed-request');
          const before = el.textContent;
          el.textContent = before.replace(`"amount": ${amount}`, '"amount": 2');
          document.dispatchEvent(new Event('htmx:afterSettle'));  // the page shows it again
          return el.textContent !== before;
        }""",
        AMOUNT,
    )
    assert changed
    assert p.page.locator("tr.destination td.amount").inner_text() == "2"
    approve_button.click()
    playwright_sync.expect(p.page.locator("#status")).to_have_class("status error")
    playwright_sync.expect(p.page.locator("#status")).to_contain_text("refused to sign")
    # 2. The intent is the real one, the digest the server gives with it is another.
    p.go(f"/requests/{request_id}")
    p.page.evaluate(
        "() => { const b = document.getElementById('approve');"
        " b.dataset.digest = b.dataset.digest.replace(/^./, c => c === '0' ? '1' : '0'); }"
    )
    p.page.get_by_role("button", name="Approve").click()
    playwright_sync.expect(p.page.locator("#status")).to_have_class("status error")
    playwright_sync.expect(p.page.locator("#status")).to_contain_text("is not the one of what")
    assert not [u for u in posts if u.endswith("/approve")], posts
    assert c.get(f"/v1/signing-requests/{request_id}")["approvals"] == []
    shoot(p.page, "07b-request-tampered-refused")


def _verify_solana(done: dict[str, Any], wallet: dict[str, Any]) -> None:
    """The signed wire transaction: libsodium verifies its signature under the wallet's key over
    its message, which pays DESTINATION."""
    from nacl.signing import VerifyKey
    from solders.pubkey import Pubkey
    from solders.transaction import Transaction

    tx = done["transaction"]
    assert tx["encoding"] == "base64", tx
    signed = Transaction.from_bytes(base64.b64decode(tx["raw"]))
    payer = bytes(signed.message.account_keys[0])
    assert payer == bytes.fromhex(wallet["public_key"])
    assert Pubkey.from_string(DESTINATION) in signed.message.account_keys
    VerifyKey(payer).verify(bytes(signed.message), bytes(signed.signatures[0]))
    assert str(signed.signatures[0]) == tx["txid"]


class _Hooks(http.server.BaseHTTPRequestHandler):
    """A webhook receiver answering 204; keeps the event types it got."""

    got: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.got.append(self.headers["X-Tholos-Event"])
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_console_monitoring_shows_a_deposit_and_its_webhook(
    cluster: GovCluster, browser: Any
) -> None:
    """The gateway restarted with a `monitor` on anvil: the monitoring page, opened before the
    deposit is sent, shows it with its confirmations, then more confirmations as anvil mines, and
    the delivery of its webhook, all without a reload (the page polls)."""
    from tests.engines import running_anvil
    from tholos.connectors.ethereum import EthereumRpc

    c = cluster
    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hooks)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    try:
        with running_anvil() as url:
            c.configure_gateway(monitor={"ethereum_rpc": url, "interval": 0.5})
            c.kill("gateway", signal.SIGTERM)
            c.start_gateway()
            c.wait_healthy()
            wallet = c.post("/v1/wallets", {"chain": "ethereum", "network": "anvil",
                                            "label": "deposits"})  # fmt: skip
            hook = c.post(
                "/v1/webhooks",
                {"url": f"http://127.0.0.1:{receiver.server_address[1]}/hook",
                 "events": ["deposit.seen", "deposit.confirmed"]},
            )  # fmt: skip
            p = Person(browser, c, "risk-1")
            p.login()
            page = p.go("/monitoring")
            deposits = page.locator(f"table.deposits[data-wallet='{wallet['wallet_id']}']")
            playwright_sync.expect(deposits).to_contain_text("No deposits seen.")
            rpc = EthereumRpc(url)
            funder = rpc.call("eth_accounts")[0]
            txid = rpc.call(
                "eth_sendTransaction",
                {"from": funder, "to": wallet["address"], "value": hex(7 * 10**15)},
            )
            row = deposits.locator("tr.deposit")
            wait = {"timeout": 120_000}
            playwright_sync.expect(row.locator("td.txid")).to_have_text(txid, **wait)
            assert row.locator("td.amount").inner_text() == str(7 * 10**15)
            assert row.locator("td.asset").inner_text() == "ETH"
            playwright_sync.expect(row.locator("td.deposit-status")).to_have_text(
                "confirmed", **wait
            )
            rpc.call("anvil_mine", "0x2")
            playwright_sync.expect(row.locator("td.confirmations")).to_have_text("3", **wait)
            log = page.locator(f"table.deliveries[data-webhook='{hook['webhook_id']}'] tr.delivery")
            playwright_sync.expect(log).to_have_count(2, **wait)  # seen and confirmed, once each
            assert set(log.locator("td.event-type").all_inner_texts()) == {
                "deposit.seen", "deposit.confirmed"
            }  # fmt: skip
            assert log.locator("td.http-status").all_inner_texts() == ["204", "204"]
            assert log.locator("td.delivery-state").all_inner_texts() == ["delivered"] * 2
            assert sorted(_Hooks.got) == ["deposit.confirmed", "deposit.seen"]
            balance = page.locator(f"tr.balance[data-wallet='{wallet['wallet_id']}']")
            playwright_sync.expect(balance.locator("td.amount")).to_have_text(
                str(7 * 10**15), **wait
            )  # the balances fragment polls too (every 15 s)
            assert page.locator("tr.outbox-entry").count() == len(c.get("/v1/outbox")["items"])
            shoot(page, "18-monitoring")
            accessible(page, "monitoring")
            assert not p.errors, p.errors
            p.ctx.close()
    finally:
        receiver.shutdown()
        receiver.server_close()
