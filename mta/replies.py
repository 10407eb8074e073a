"""SMTP replies Sendmill gives, as named constants used by the servers and by the tests.

Enhanced status codes per RFC 3463; texts say what is wrong in words a sender understands.
"""

S220_READY = "220 {hostname} ESMTP Sendmill"
S220_STARTTLS = "220 2.0.0 Ready to start TLS"
S221_BYE = "221 2.0.0 Bye"
S235_AUTH_OK = "235 2.7.0 Authentication successful"
S250_OK = "250 2.0.0 OK"
S250_QUEUED = "250 2.0.0 OK: queued as {ids}"
S250_QUEUED_MANY = "250 2.0.0 OK: queued as {first} and {more} more"
S250_SENDER_OK = "250 2.1.0 Sender OK"
S250_RECIPIENT_OK = "250 2.1.5 Recipient OK"

S421_TOO_MANY_AUTH_FAILURES = "421 4.7.0 Too many failed authentication attempts, closing"
S421_SHUTTING_DOWN = "421 4.3.2 Service shutting down, try again later"
S451_QUEUE_UNAVAILABLE = "451 4.3.0 Queue temporarily unavailable, try again later"
S451_INTERNAL_ERROR = "451 4.3.0 Internal error, try again later"
S452_TOO_MANY_RECIPIENTS = "452 4.5.3 Too many recipients"
S454_AUTH_UNAVAILABLE = "454 4.7.0 Temporary authentication failure, try again later"
S454_TLS_FAILED = "454 4.7.0 TLS handshake failed"

S500_LINE_TOO_LONG = "500 5.5.2 Line too long"
S500_SYNTAX = "500 5.5.2 Syntax error"
S501_BAD_ADDRESS = "501 5.1.3 Bad address syntax"
S502_AUTH_NOT_OFFERED = "502 5.5.1 AUTH is not offered on this port; use the submission port"
S503_NO_RECIPIENTS = "503 5.5.1 No valid recipients"
S503_NEED_MAIL = "503 5.5.1 MAIL FROM first"
S503_NESTED_MAIL = "503 5.5.1 Nested MAIL command"
S503_AUTH_IN_TRANSACTION = "503 5.5.1 AUTH is not permitted during a mail transaction"
S530_AUTH_REQUIRED = "530 5.7.0 Authentication required"
S535_AUTH_FAILED = "535 5.7.8 Authentication credentials invalid"
S538_ENCRYPTION_REQUIRED = "538 5.7.11 Encryption required for requested authentication mechanism"
S550_NO_RELAY = "550 5.7.1 Relaying denied: authenticate to send to this domain"
S550_NO_SUCH_USER = "550 5.1.1 No such user here"
S550_TRUSTED_NEEDS_SENDER = (
    "550 5.7.1 Unauthenticated submission from a trusted network needs an envelope sender on a "
    "sending domain"
)
S550_FROM_NOT_OWNED = "550 5.7.1 Sender domain {domain} is not a sending domain of this account"
S552_TOO_BIG = "552 5.3.4 Message too big for this server (limit {limit} bytes)"
S554_BAD_HEADERS = "554 5.6.0 Message rejected: {reason}"
S554_BAD_OPTION = "554 5.6.0 Bad X-Sendmill option: {reason}"
