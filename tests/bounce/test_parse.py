"""Parsing and classification without I/O: DSN shapes real MTAs send, ARF complaints,
auto-replies, line endings and hostile input (nothing may raise), and the classifier's table."""

from __future__ import annotations

import random

import pytest

from bounce.classify import Classifier, default_classifier
from bounce.parse import parse_message
from bounce.reasons import Reason, ReportKind

DSN = b"""From: MAILER-DAEMON@mx.example.net (Mail Delivery System)
To: b+aaaa-bbbb@bounces.sendmill.test
Subject: Undelivered Mail Returned to Sender
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="BOUND"

--BOUND
Content-Type: text/plain

I'm sorry to have to inform you that your message could not be delivered.

--BOUND
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net
X-Postfix-Sender: rfc822; b+aaaa-bbbb@bounces.sendmill.test

Final-Recipient: rfc822; alice@example.org
Original-Recipient: rfc822;Alice@Example.org
Action: failed
Status: 5.1.1
Remote-MTA: dns; mx1.example.org
Diagnostic-Code: smtp; 550 5.1.1 <alice@example.org>: Recipient address
    rejected: User unknown in virtual mailbox table

Final-Recipient: rfc822; bob@example.org
Action: delayed
Status: 4.2.2
Diagnostic-Code: smtp; 452 4.2.2 Mailbox full

--BOUND
Content-Type: text/rfc822-headers

Return-Path: <b+aaaa-bbbb@bounces.sendmill.test>
Message-ID: <m1@example.test>
From: app@example.test
To: alice@example.org
Subject: hello

--BOUND--
"""


def _endings(data: bytes, ending: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\n", ending)


@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b"\r"], ids=["LF", "CRLF", "CR"])
def test_a_dsn_is_read_whatever_its_line_endings(ending: bytes) -> None:
    report = parse_message(_endings(DSN, ending))
    assert report.kind is ReportKind.BOUNCE
    alice, bob = report.recipients
    assert (alice.recipient, alice.reason, alice.hard) == (
        "alice@example.org",
        Reason.USERUNKNOWN,
        True,
    )
    assert alice.status == "5.1.1" and alice.remote_mta == "mx1.example.org"
    assert "User unknown in virtual mailbox table" in alice.diagnostic  # folded line joined
    assert (bob.reason, bob.hard, bob.action) == (Reason.MAILBOXFULL, False, "delayed")
    assert report.original.message_id == "m1@example.test"
    assert report.original.return_path == "b+aaaa-bbbb@bounces.sendmill.test"


def test_a_dsn_wrapped_in_multipart_mixed_without_report_type_is_still_a_dsn() -> None:
    inner_body = DSN.split(b"\n\n", 1)[1]  # the report's parts, without its own headers
    outer = (
        b"From: postmaster@example.net\nSubject: failure\nMIME-Version: 1.0\n"
        b'Content-Type: multipart/mixed; boundary="OUTER"\n\n'
        b"--OUTER\nContent-Type: text/plain\n\nSee attached.\n\n"
        b'--OUTER\nContent-Type: multipart/mixed; boundary="BOUND"\n\n'
        + inner_body
        + b"\n--OUTER--\n"
    )
    report = parse_message(outer)
    assert [r.recipient for r in report.recipients] == ["alice@example.org", "bob@example.org"]
    assert report.recipients[0].reason is Reason.USERUNKNOWN


def test_a_delivery_status_part_labelled_text_plain_is_read() -> None:
    report = parse_message(
        DSN.replace(b"Content-Type: message/delivery-status", b"Content-Type: text/plain")
    )
    assert report.recipients[0].recipient == "alice@example.org"
    assert report.recipients[0].status == "5.1.1"


def test_successful_delivery_notices_have_no_failed_recipient() -> None:
    success = DSN.replace(b"Action: failed", b"Action: delivered").replace(
        b"Action: delayed", b"Action: relayed"
    )
    assert parse_message(success).recipients == []


ARF = b"""From: feedback@fbl.example.net
To: fbl@bounces.sendmill.test
Subject: Abuse report
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="ARF"

--ARF
Content-Type: text/plain

This is an email abuse report.

--ARF
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: SomeGenerator/1.0
Version: 1
Original-Mail-From: <b+aaaa-bbbb@bounces.sendmill.test>
Original-Rcpt-To: <carol@example.org>
Arrival-Date: Thu, 8 Mar 2005 14:00:00 EDT
Source-IP: 192.0.2.1

--ARF
Content-Type: message/rfc822

From: app@example.test
To: carol@example.org
Message-ID: <m2@example.test>
Subject: offer

Buy now.
--ARF--
"""


def test_an_arf_report_is_a_complaint_with_no_hard_or_soft() -> None:
    report = parse_message(ARF)
    assert report.kind is ReportKind.COMPLAINT
    assert report.feedback_type == "abuse"
    (who,) = report.recipients
    assert (who.recipient, who.reason, who.hard) == ("carol@example.org", Reason.FEEDBACK, None)
    assert report.original.message_id == "m2@example.test"
    assert report.original.return_path == "b+aaaa-bbbb@bounces.sendmill.test"


def test_a_redacted_complaint_still_carries_the_original_headers() -> None:
    report = parse_message(
        ARF.replace(b"Original-Rcpt-To: <carol@example.org>\n", b"").replace(
            b"To: carol@example.org", b"To: redacted"
        )
    )
    assert report.kind is ReportKind.COMPLAINT
    assert report.recipients[0].recipient == ""
    assert report.original.message_id == "m2@example.test"


def test_an_out_of_office_reply_is_a_vacation_not_a_bounce() -> None:
    reply = (
        b"From: Dave <dave@example.org>\nTo: b+aaaa-bbbb@bounces.sendmill.test\n"
        b"Subject: Automatic reply: hello\nAuto-Submitted: auto-replied\n\n"
        b"I am out of the office until Monday with limited access to email.\n"
    )
    report = parse_message(reply)
    assert report.kind is ReportKind.VACATION
    assert report.recipients[0].reason is Reason.VACATION
    assert report.recipients[0].hard is None


def test_a_plain_text_qmail_bounce_names_its_recipient() -> None:
    qmail = (
        b"From: MAILER-DAEMON@mail.example.org\nSubject: failure notice\n\n"
        b"Hi. This is the qmail-send program at mail.example.org.\n"
        b"I'm afraid I wasn't able to deliver your message to the following addresses.\n"
        b"This is a permanent error; I've given up. Sorry it didn't work out.\n\n"
        b"<erin@example.org>:\nSorry, no mailbox here by that name. (#5.1.1)\n\n"
        b"--- Below this line is a copy of the message.\n\nReturn-Path: <x@example.test>\n"
    )
    (erin,) = parse_message(qmail).recipients
    assert (erin.recipient, erin.reason, erin.hard) == (
        "erin@example.org",
        Reason.USERUNKNOWN,
        True,
    )


def test_an_exim_bounce_uses_x_failed_recipients() -> None:
    exim = (
        b"From: Mail Delivery System <Mailer-Daemon@mx.example.org>\n"
        b"Subject: Mail delivery failed: returning message to sender\n"
        b"X-Failed-Recipients: frank@example.org\n\n"
        b"This message was created automatically by mail delivery software.\n\n"
        b"A message that you sent could not be delivered to one or more of its\n"
        b"recipients. This is a permanent error. The following address(es) failed:\n\n"
        b"  frank@example.org\n"
        b"    SMTP error from remote mail server after RCPT TO:<frank@example.org>:\n"
        b"    host mx.example.org [192.0.2.7]: 552 5.2.2 Mailbox quota exceeded\n"
    )
    (frank,) = parse_message(exim).recipients
    assert (frank.recipient, frank.reason) == ("frank@example.org", Reason.MAILBOXFULL)


PROSE = {
    # Lotus Domino: the address alone, the reason two paragraphs below it
    "domino": b"""From: Postmaster@notes.example.org
Subject: DELIVERY FAILURE: User john (john@example.org) not listed in Domino Directory

Your message

  Subject: Hello

was not delivered to:

  john@example.org

because:

  User john (john@example.org) not listed in Domino Directory
""",
    # Gmail's old text bounces: the reply several paragraphs below the address
    "gmail": b"""From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>
Subject: Delivery Status Notification (Failure)

Delivery to the following recipient failed permanently:

     kate@example.org

Technical details of permanent failure:
Google tried to deliver your message, but it was rejected by the server for the recipient
domain example.org by mx.example.org. [192.0.2.1].

The error that the other server returned was:
550 5.2.2 <kate@example.org>... Mailbox full

   ----- Original message -----

To: kate@example.org
""",
    # HTML only, entities and tables (some providers send no text/plain part)
    "html": b"""From: Mail Delivery System <postmaster@outlook.example>
Subject: Undeliverable: Hello
MIME-Version: 1.0
Content-Type: text/html; charset="utf-8"

<html><head><style>p {color: red}</style></head><body>
<p><b>Your message to <a href="mailto:olga@example.org">olga@example.org</a> couldn&#39;t be
delivered.</b></p><p>olga wasn&#39;t found at example.org.</p><table><tr><td>Remote Server
returned &#39;550 5.1.1 RESOLVER.ADR.RecipNotFound; not found&#39;</td></tr></table>
</body></html>
""",
    # Sendmail without a DSN part
    "sendmail": b"""From: Mail Delivery Subsystem <MAILER-DAEMON@mx.example.jp>
Subject: Returned mail: see transcript for details

   ----- The following addresses had permanent fatal errors -----
<taro@example.jp>
    (reason: 550 5.1.1 <taro@example.jp>... User Unknown)

   ----- Transcript of session follows -----
... while talking to mail.example.jp.:
>>> DATA
<<< 550 5.1.1 <taro@example.jp>... User Unknown
""",
}


@pytest.mark.parametrize(
    ("name", "recipient", "reason"),
    [
        ("domino", "john@example.org", Reason.USERUNKNOWN),
        ("gmail", "kate@example.org", Reason.MAILBOXFULL),
        ("sendmail", "taro@example.jp", Reason.USERUNKNOWN),
        ("html", "olga@example.org", Reason.USERUNKNOWN),
    ],
)
def test_prose_bounces_find_the_reason_around_the_address(name, recipient, reason) -> None:
    (failed,) = parse_message(PROSE[name]).recipients
    assert (failed.recipient, failed.reason) == (recipient, reason)


HOSTILE = [
    b"",
    b"\x00\xff\xfe garbage",
    b"Content-Type: multipart/report; boundary=\n\n--\n--",
    b"Content-Type: multipart/mixed; boundary=X\n\n--X\nContent-Type: message/rfc822\n\n",
    b"Content-Type: message/delivery-status\n\nFinal-Recipient: ;;;\nStatus: 9.9.9\n",
    b"Content-Type: text/plain; charset=no-such-charset\nContent-Transfer-Encoding: base64\n\n!!!",
    b"Subject: =?utf-8?q?broken=ZZ?=\nFrom: =?x-unknown?b?AAAA?=\n\nhello",
    b"From: a\n" + b"X: " + b"y" * 200_000 + b"\n\n" + b"z\r" * 10_000,
]


@pytest.mark.parametrize("raw", HOSTILE)
def test_hostile_input_never_raises_and_is_reported(raw: bytes) -> None:
    report = parse_message(raw)
    assert report.recipients, "every message is reported, if only as undefined"


def test_random_damage_to_a_real_dsn_never_raises() -> None:
    rng = random.Random(4)
    for _ in range(300):
        data = bytearray(DSN)
        for _ in range(rng.randint(1, 30)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        cut = rng.randrange(len(data))
        parse_message(bytes(data[:cut] if rng.random() < 0.3 else data))


@pytest.mark.parametrize(
    ("code", "reply", "reason", "hard"),
    [
        (
            550,
            "550 5.1.1 <a@b.example>: Recipient address rejected: User unknown",
            "userunknown",
            True,
        ),
        (550, "550 5.1.1 Mailbox is full", "mailboxfull", False),
        (
            452,
            "452 4.2.2 The email account that you tried to reach is over quota.",
            "mailboxfull",
            False,
        ),
        (
            554,
            "554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org",
            "blocked",
            False,
        ),
        (
            550,
            "550 5.7.26 Unauthenticated email from example.test is not accepted due to"
            " domain's DMARC policy",
            "authfailure",
            False,
        ),
        (
            550,
            "550 5.7.25 The IP address sending this message does not have a PTR record setup",
            "requireptr",
            False,
        ),
        (
            421,
            "421 4.7.28 Our system has detected an unusual rate of unsolicited mail",
            "badreputation",
            False,
        ),
        (556, "556 5.1.10 Domain does not accept mail (null MX)", "notaccept", True),
        (456, "456 4.1.10 Domain does not accept mail", "notaccept", False),
        (551, "551 5.1.6 User has moved", "hasmoved", True),
        (552, "552 5.3.4 Message size exceeds fixed limit", "mesgtoobig", False),
        (554, "554 5.7.1 <x@y.example>: Relay access denied", "norelaying", False),
        (550, "550 5.7.1 Message rejected as spam", "spamdetected", False),
        (450, "450 4.7.1 Greylisted, please try again in 300 seconds", "blocked", False),
        (550, "550 Requested action not taken: mailbox unavailable", "userunknown", True),
        (550, "550 computer says no", "onhold", False),
    ],
)
def test_smtp_replies_classify_like_bounces(code: int, reply: str, reason: str, hard: bool) -> None:
    c = default_classifier().classify_reply(code, reply)
    assert (c.reason.value, c.hard) == (reason, hard)


def test_the_rules_file_uses_only_the_vocabulary(tmp_path) -> None:
    bad = tmp_path / "rules.toml"
    bad.write_text('[statuses]\n"5.1.1" = "nosuchreason"\n[[reason]]\nname = "x"\n')
    with pytest.raises(ValueError, match=r"rules\.toml"):
        Classifier(bad)


POSTFIX_AT = """From: MAILER-DAEMON@mx.sender.test (Mail Delivery System)
To: b+case@bounces.sendmill.test
Subject: Undelivered Mail Returned to Sender
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: text/plain

<kim@dest.test>: host mx.dest.test[192.0.2.1] said: 550 Unknown user
    kim@dest.test (in reply to {command})

--B
Content-Type: message/delivery-status

Final-Recipient: rfc822; kim@dest.test
Action: failed
Status: 5.0.0
Diagnostic-Code: smtp; 550 Unknown user kim@dest.test

--B--
"""


@pytest.mark.parametrize(
    "command, reason, hard",
    [
        ("RCPT TO command", Reason.USERUNKNOWN, True),
        ("end of DATA command", Reason.FILTERED, False),  # the message was read: filtered
        ("MAIL FROM command", Reason.REJECTED, False),  # about the envelope sender
    ],
)
def test_the_smtp_command_decides_what_unknown_user_means(command, reason, hard) -> None:
    report = parse_message(POSTFIX_AT.format(command=command).encode())
    assert [(r.recipient, r.reason, r.hard) for r in report.recipients] == [
        ("kim@dest.test", reason, hard)
    ]


def test_a_status_code_that_says_userunknown_stands_whatever_the_command() -> None:
    raw = POSTFIX_AT.format(command="end of DATA command").replace("5.0.0", "5.1.1")
    assert parse_message(raw.encode()).recipients[0].reason is Reason.USERUNKNOWN


@pytest.mark.parametrize(
    "host, reply, reason",
    [
        ("mail.protection.outlook.com", "550 5.7.506 Access denied, bad HELO", Reason.BLOCKED),
        (
            "eur.olc.protection.outlook.com",
            "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup",
            Reason.USERUNKNOWN,
        ),
        ("mx.cox.net", "554 5.7.1 cox.net rejected: IP blocked, see CXBL", Reason.BLOCKED),
        ("smtp-in.orange.fr", "550 5.1.1 Adresse invalide [OFR_416]", Reason.USERUNKNOWN),
        (
            "smtp.secureserver.net",
            "554 Virus infected message rejected. IB705",
            Reason.VIRUSDETECTED,
        ),
    ],
)
def test_big_receivers_are_read_by_their_own_rules(host: str, reply: str, reason: Reason) -> None:
    got = default_classifier().classify("", reply, "failed", remote_host=host, command="RCPT")
    assert got.reason is reason


def test_a_receivers_rules_apply_to_its_recipients_when_no_remote_host_is_named() -> None:
    c = default_classifier()
    reply = "550 5.1.10 RESOLVER.ADR.RecipientNotFound"
    assert c.classify("", reply, domain="hotmail.com").reason is Reason.USERUNKNOWN
    # elsewhere 5.1.10 is RFC 7505's null MX
    assert c.classify("5.1.10", "550 5.1.10 null MX", domain="example.org").reason is (
        Reason.NOTACCEPT
    )


def test_the_receivers_file_uses_only_the_vocabulary(tmp_path) -> None:
    bad = tmp_path / "remote_hosts.toml"
    bad.write_text('[[host]]\nname = "x"\nhosts = ["x.test"]\n[host.reasons]\nnosuch = ["a"]\n')
    with pytest.raises(ValueError, match=r"remote_hosts\.toml"):
        Classifier(receivers=bad)


def test_an_arf_report_naming_several_recipients_is_a_complaint_for_each() -> None:
    raw = ARF.replace(
        b"Original-Rcpt-To: <carol@example.org>\n",
        b"Original-Rcpt-To: <carol@example.org>\nOriginal-Rcpt-To: dave@example.org\n",
    )
    report = parse_message(raw)
    assert report.kind is ReportKind.COMPLAINT
    assert [r.recipient for r in report.recipients] == ["carol@example.org", "dave@example.org"]


def test_an_arf_report_without_original_rcpt_to_names_the_returned_messages_to() -> None:
    raw = ARF.replace(b"Original-Rcpt-To: <carol@example.org>\n", b"").replace(
        b"Content-Type: message/rfc822\n", b"Content-Type: text/rfc822-headers\n"
    )
    report = parse_message(raw)
    assert [(r.recipient, r.reason) for r in report.recipients] == [
        ("carol@example.org", Reason.FEEDBACK)
    ]


SES_MAILED = b"""From: no-reply@sns.amazonaws.com
To: b+aaaa-bbbb@bounces.sendmill.test
Subject: AWS Notification Message
Content-Type: text/plain; charset=UTF-8

{"notificationType":"Bounce","bounce":{"bounceType":"Permanent","bounceSubType":"General",
"bouncedRecipients":[{"emailAddress":"bounce@simulator.amazonses.com","action":"failed",
"status":"5.1.1","diagnosticCode":"smtp; 550 5.1.1 user unknown"}],
"timestamp":"2026-12-03T10:00:00.000Z","feedbackId":"0100-abc",
"reportingMTA":"dsn; a8-52.smtp-out.amazonses.com"},
"mail":{"timestamp":"2026-12-03T09:59:59.000Z","source":"app@example.test",
"messageId":"0100-def","destination":["bounce@simulator.amazonses.com"],
"commonHeaders":{"from":["app@example.test"],"to":["bounce@simulator.amazonses.com"],
"messageId":"<m3@example.test>","subject":"hello"}}}

--
If you wish to stop receiving notifications from this topic, please click or visit the link
below to unsubscribe.
"""


def test_a_mailed_ses_notification_is_read_like_a_dsn() -> None:
    report = parse_message(SES_MAILED)
    assert report.kind is ReportKind.BOUNCE
    (r,) = report.recipients
    assert (r.recipient, r.reason, r.hard, r.status) == (
        "bounce@simulator.amazonses.com",
        Reason.USERUNKNOWN,
        True,
        "5.1.1",
    )
    assert report.original.message_id == "m3@example.test"


def test_a_mailed_ses_complaint_is_a_complaint() -> None:
    head = SES_MAILED.partition(b"\n\n")[0]
    body = (
        b'{"notificationType":"Complaint","complaint":{"complainedRecipients":[{"emailAddress":'
        b'"complaint@simulator.amazonses.com"}],"complaintFeedbackType":"abuse"},"mail":{}}'
    )
    report = parse_message(head + b"\n\n" + body + b"\n")
    assert report.kind is ReportKind.COMPLAINT
    assert [r.recipient for r in report.recipients] == ["complaint@simulator.amazonses.com"]


def test_a_code_naming_a_precise_reason_beats_vaguer_words() -> None:
    c = default_classifier()
    # 5.6.0 says content; "policy" alone would be policyviolation
    assert c.classify("5.6.0", "554 5.6.0 Message rejected due to local policy").reason is (
        Reason.CONTENTERROR
    )
    # 5.7.1 is vague (securityerror): the words decide
    assert c.classify("5.7.1", "550 5.7.1 Message rejected due to local policy").reason is (
        Reason.POLICYVIOLATION
    )
