"""The local AWS emulator: moto's server (from .tools/venv), with SQS FIFO message groups
released the way SQS releases them.

    .tools/venv/bin/python infra/emulator/moto_server.py -H 127.0.0.1 -p 4566

moto 5.2.5 counts a FIFO group as in flight while any message of it it has handed out is
still in its "pending" set, and takes a message out of that set only when its receive loop
reaches it. A group whose received messages were all handed back (ChangeMessageVisibility,
as a delivery that waits does) is therefore still "in flight" when its first message is
looked at, so moto skips the first and returns the group's LAST message first: order broken.
SQS counts a message in flight only until its visibility timeout ends (AWS SQS Developer
Guide, "Amazon SQS FIFO queue message grouping" and "Amazon SQS visibility timeout"), so here
a group is in flight only while one of its messages is invisible: before each receive, the
messages whose visibility has ended leave the pending set, and a group counts as pending only
through an invisible message.

moto also gives each FIFO message a random 20-digit SequenceNumber; SQS's "continues to
increase for a particular MessageGroupId" (API reference, SendMessage), and slack-delivery's
backlog orders a channel's messages by it. Here they increase in the order messages are
queued.

A long poll (WaitTimeSeconds > 0) in moto waits only while the queue has no visible message
and never looks again at which groups are in flight: with a FIFO group's next messages
visible but its batch in flight, it spins without pause for the whole wait, holding the
interpreter the other requests need, and it keeps the group's messages back until the wait
ends even when the batch was deleted meanwhile. SQS "returns messages as soon as they are
available" (API reference, ReceiveMessage, WaitTimeSeconds); here a long poll looks again,
group state and all, every 100 ms until something can be returned or the wait is over, and
sleeps in between.

SES cannot be made to fail on moto: here `POST /_ingestlayer/ses-faults` with a JSON array of
faults queues them, and each SendEmail takes the next one: `{"status": 429}` answers
TooManyRequestsException ("Maximum sending rate exceeded"), `{"status": 500}` InternalFailure
and `{"status": 503}` ServiceUnavailable, as SES's API reference lists them (SendEmail, Errors;
Common Errors); with `"after_send": true` the email is kept first (SES took it, the answer was
lost: the ambiguous case); with `"to": "address"` only an email to that address takes it (tests
share one emulator). `DELETE` drops what is queued.

What SES sent is in moto's `GET /moto-api/data.json`, which serialises every model of every
service: with a few hundred tests' tables and queues on one emulator it takes seconds and fails
when another request changes a model mid-way. `GET /_ingestlayer/ses-sent?to=address` answers
only the emails SES keeps (`source`, `destinations`, `subject`, `body`, `id`, as data.json has
them), to that address or, without `to`, all of them.

moto's DynamoDB TransactWriteItems copies every table it touches whole (copy.deepcopy) before
each transaction, to put them back if it is cancelled: 1.4 s for one transaction on a table of
1,000 items, 4.1 s at 3,000, where DynamoDB answers in milliseconds whatever the table's size.
Here a transaction keeps a copy of only the items it names, and a cancelled or refused one puts
those back: the same outcome (all or nothing) at the cost of its own items.

moto's ReceiveMessage checks each message it returns against the queue's retention period by
computing every attribute of the queue, three of which count the queue's messages one by one:
10 messages from a queue of 1,000 took a second. Here the check reads the retention period
itself. SendMessage computes them too (for one attribute), and each message's "visible" and
"delayed" build two datetimes: here they compare against the clock directly (the same epoch
milliseconds), which took the emulator's time per request under a burst down by more than half.
SendMessage still computed every attribute three times per message for the one it reads
(ContentBasedDeduplication), and SendMessageBatch twice more per message while checking the
batch: here, while a message or a batch is sent, the queue's attributes are that setting
alone. moto's Query on a table's own key sorted every item of the table and then kept
the partition's: here such a Query reads the partition. With 300 channels' backlogs the two
took the emulator's CPU from 299 s to 165 s.

moto's server answers requests on threads and checks a DynamoDB write's condition before
making the write, with nothing in between to stop another thread: two writes conditional on the
same value could both succeed, where DynamoDB applies each one (and each transaction)
atomically. Here each table's writes (PutItem, UpdateItem, DeleteItem, and BatchWriteItem
through them) take the table's lock, and TransactWriteItems those of every table it names.

To find which service a request is for, moto lists its own package directory (a listdir and
an isdir per entry) on every request: a tenth of the emulator's time under a burst (py-spy).
Here the list is read once at start; it cannot change while the server runs. The server's
line per request (werkzeug's INFO log, written to .tools/moto-<port>.log) is off; warnings
and errors still go there.
Everything else is moto's.
"""

import copy
import itertools
import json
import logging
import re
import sys
import threading
import time
from urllib.parse import parse_qs

import moto.backends as moto_backends
import moto.dynamodb.models as dynamodb_models
from moto.core.exceptions import JsonRESTError
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table
from moto.moto_server.werkzeug_app import DomainDispatcherApplication
from moto.server import main
from moto.ses.models import ses_backends
from moto.sesv2.models import SESV2Backend
from moto.sqs.models import Message, Queue, SQSBackend


def _groups_in_flight(self):
    return {
        m.group_id
        for m in self._pending_messages
        if m.group_id is not None and not m.visible
    }


Queue.pending_message_groups = property(_groups_in_flight)

_receive = SQSBackend.receive_message


LONG_POLL_STEP = 0.1


def _receive_message(
    self,
    queue_name,
    count,
    wait_seconds_timeout,
    visibility_timeout,
    message_attribute_names=None,
):
    queue = self.get_queue(queue_name)
    deadline = time.monotonic() + (wait_seconds_timeout or 0)
    while True:
        for message in [m for m in queue.pending_messages if m.visible]:
            queue.pending_messages.discard(message)
        result = _receive(
            self, queue_name, count, 0, visibility_timeout, message_attribute_names
        )
        if result or time.monotonic() >= deadline:
            return result
        time.sleep(LONG_POLL_STEP)


SQSBackend.receive_message = _receive_message

_sequence = itertools.count(10**19)
_sending = threading.Lock()
_send = SQSBackend.send_message


def _send_message(self, *args, **kwargs):
    with _sending:
        message = _send(self, *args, **kwargs)
        if getattr(message, "sequence_number", None) is not None:
            message.sequence_number = f"{next(_sequence):020d}"
        return message


SQSBackend.send_message = _send_message


def _visible(self):
    return time.time() * 1000 > self.visible_at


def _delayed(self):
    return time.time() * 1000 < self.delayed_until


Message.visible = property(_visible)
Message.delayed = property(_delayed)


def _is_retained(self, queue_name, message):
    retention = int(self.get_queue(queue_name).message_retention_period)
    return retention + message.sent_timestamp / 1000 > time.time()


SQSBackend.is_message_valid_based_on_retention_period = _is_retained

# SendMessage reads one setting of its queue, ContentBasedDeduplication, through moto's
# `Queue.attributes`, three times per message: each time every attribute is computed, three
# of them by counting the queue's messages one by one. While a message is being sent here,
# `attributes` answers that setting alone (as moto renders it); everywhere else it is moto's.
_attributes = Queue.attributes.fget
_in_send = threading.local()


def _queue_attributes(self):
    if not getattr(_in_send, "active", False):
        return _attributes(self)
    setting = self.content_based_deduplication
    if isinstance(setting, bool):
        setting = str(setting).lower()
    return {"ContentBasedDeduplication": setting}


Queue.attributes = property(_queue_attributes)


def _sending_one(send):
    def sending(self, *args, **kwargs):
        outer = getattr(_in_send, "active", False)
        _in_send.active = True
        try:
            return send(self, *args, **kwargs)
        finally:
            _in_send.active = outer

    return sending


SQSBackend.send_message = _sending_one(SQSBackend.send_message)
# SendMessageBatch checks every message (`_validate_message`, two reads of the attributes
# each) before it sends them one by one: a fifth of the emulator's time with 300 channels'
# bursts (py-spy), where it too needs the one setting.
SQSBackend.send_message_batch = _sending_one(SQSBackend.send_message_batch)

# moto's Query on a table's own key sorts every item of the table, then keeps those of the
# asked partition: a backlog's or ledger's Query grew with every other channel's items (a
# fifth of the emulator's time with 300 channels' backlogs, py-spy). DynamoDB reads the
# partition alone. Here, during such a Query, the table's items are the partition's.
_all_items = Table.all_items
_query = Table.query
_partition = threading.local()


def _items_of_partition(self):
    asked = getattr(_partition, "asked", None)
    if asked is None or asked[0] is not self:
        return _all_items(self)
    items = self.items.get(asked[1])
    if items is None:
        return []
    if not self.range_key_attr:
        return [items]
    return sorted(items.values(), key=lambda item: item.range_key)


def _query_partition(self, hash_key, *args, **kwargs):
    index_name = args[6] if len(args) > 6 else kwargs.get("index_name")
    if index_name or hash_key is None:
        return _query(self, hash_key, *args, **kwargs)
    _partition.asked = (self, hash_key)
    try:
        return _query(self, hash_key, *args, **kwargs)
    finally:
        _partition.asked = None


Table.all_items = _items_of_partition
Table.query = _query_partition

class _CopyExceptTables:
    """`copy` as moto's DynamoDB backend sees it, except that a table is not copied: a
    transaction puts back the items it saved instead (below)."""

    @staticmethod
    def deepcopy(value, memo=None):
        return value if isinstance(value, Table) else copy.deepcopy(value, memo)

    copy = staticmethod(copy.copy)


dynamodb_models.copy = _CopyExceptTables


def _named_items(backend, transact_items):
    """(table, hash, range, a copy of the item or None) for each item a transaction names."""
    saved = []
    for entry in transact_items:
        try:
            op = next(iter(entry.values()))
            table = backend.get_table(op["TableName"])
            key = op["Key"] if "Key" in op else op["Item"]
            hash_value = DynamoType(key[table.hash_key_attr])
            range_value = (
                DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
            )
            item = table.get_item(hash_value, range_value)
        except Exception:  # noqa: BLE001 - moto refuses the transaction for it itself
            continue
        saved.append((table, hash_value, range_value, copy.deepcopy(item)))
    return saved


def _put_back(table, hash_value, range_value, item):
    if range_value is None:
        if item is None:
            table.items.pop(hash_value, None)
        else:
            table.items[hash_value] = item
    elif item is None:
        if hash_value in table.items:
            table.items[hash_value].pop(range_value, None)
    else:
        table.items[hash_value][range_value] = item


_transact_write_items = DynamoDBBackend.transact_write_items


def _transact_write_items_putting_back(self, transact_items):
    saved = _named_items(self, transact_items)
    try:
        return _transact_write_items(self, transact_items)
    except Exception:
        for table, hash_value, range_value, item in reversed(saved):
            _put_back(table, hash_value, range_value, item)
        raise


DynamoDBBackend.transact_write_items = _transact_write_items_putting_back

# DynamoDB applies each conditional write (and each transaction) atomically. moto's server
# answers requests on threads and checks a condition, then writes, with nothing in between
# to stop another thread: two writes conditional on the same value could both succeed (two
# instances taking one pacing slot, under load). Here each table's writes take its lock,
# and a transaction those of every table it names, in name order. (One lock for every
# table held a write to one table behind a long transaction on another: a pacing slot
# waited out a 96-item claim on the ledger, and its post went out late.)
_table_locks = {}
_table_locks_guard = threading.Lock()


def _table_lock(name):
    with _table_locks_guard:
        return _table_locks.setdefault(name, threading.RLock())


def _tables_named(transact_items):
    names = set()
    for entry in transact_items or []:
        try:
            names.add(next(iter(entry.values())).get("TableName") or "")
        except (AttributeError, StopIteration):
            names.add("")
    return sorted(names)


def _atomic(write, tables_of):
    def locked(self, *args, **kwargs):
        locks = [_table_lock(name) for name in tables_of(*args, **kwargs)]
        for lock in locks:
            lock.acquire()
        try:
            return write(self, *args, **kwargs)
        finally:
            for lock in reversed(locks):
                lock.release()

    return locked


def _one_table(table_name, *args, **kwargs):
    return [table_name]


def _transaction_tables(transact_items, *args, **kwargs):
    return _tables_named(transact_items)


for _name in ("put_item", "update_item", "delete_item"):
    setattr(DynamoDBBackend, _name, _atomic(getattr(DynamoDBBackend, _name), _one_table))
DynamoDBBackend.transact_write_items = _atomic(
    DynamoDBBackend.transact_write_items, _transaction_tables
)

SES_FAULTS_PATH = "/_ingestlayer/ses-faults"
SES_ERRORS = {
    429: ("TooManyRequestsException", "Maximum sending rate exceeded."),
    500: ("InternalFailure", "The request processing has failed because of an unknown error."),
    503: ("ServiceUnavailable", "The request has failed due to a temporary failure of the server."),
}
_ses_faults = []
_ses_faults_lock = threading.Lock()


class SesFault(JsonRESTError):
    def __init__(self, status):
        error_type, message = SES_ERRORS[status]
        super().__init__(error_type, message)
        self.code = status


def _check_fault(fault):
    if not isinstance(fault, dict) or fault.get("status") not in SES_ERRORS:
        raise ValueError(
            f'a fault is {{"status": 429|500|503, "after_send": bool, "to": str}}: {fault!r}'
        )
    return fault


_ses_send_email = SESV2Backend.send_email


def _send_email_with_faults(self, source, destinations, subject, body):
    to = set((destinations or {}).get("ToAddresses") or [])
    with _ses_faults_lock:
        fault = next(
            (f for f in _ses_faults if f.get("to") is None or f.get("to") in to), None
        )
        if fault is not None:
            _ses_faults.remove(fault)
    if fault is None:
        return _ses_send_email(self, source, destinations, subject, body)
    if fault.get("after_send"):
        _ses_send_email(self, source, destinations, subject, body)
    raise SesFault(fault["status"])


SESV2Backend.send_email = _send_email_with_faults

SES_SENT_PATH = "/_ingestlayer/ses-sent"


def _recipients(message):
    destinations = message.destinations
    if isinstance(destinations, dict):
        return [a for field in destinations.values() for a in field or []]
    return list(destinations or [])


def _sent(to):
    """The emails SES keeps, in the order sent, to `to` (all of them when None)."""
    messages = [
        m
        for account in list(ses_backends.values())
        for backend in list(account.values())
        for m in list(backend.sent_messages)
    ]
    return [
        {
            "id": m.id,
            "source": m.source,
            "destinations": m.destinations,
            "subject": getattr(m, "subject", None),
            "body": getattr(m, "body", None),
        }
        for m in messages
        if to is None or to in _recipients(m)
    ]


def _ses_sent(environ, start_response):
    if environ.get("REQUEST_METHOD") != "GET":
        start_response("405 Method Not Allowed", [("Allow", "GET")])
        return [b""]
    query = parse_qs(environ.get("QUERY_STRING", ""))
    body = json.dumps(_sent(query.get("to", [None])[0])).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


_dispatch = DomainDispatcherApplication.__call__


def _call(self, environ, start_response):
    if environ.get("PATH_INFO") == SES_SENT_PATH:
        return _ses_sent(environ, start_response)
    if environ.get("PATH_INFO") != SES_FAULTS_PATH:
        return _dispatch(self, environ, start_response)
    method = environ.get("REQUEST_METHOD")
    if method == "DELETE":
        with _ses_faults_lock:
            _ses_faults.clear()
        start_response("204 No Content", [])
        return [b""]
    if method != "POST":
        start_response("405 Method Not Allowed", [("Allow", "POST, DELETE")])
        return [b""]
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        faults = [_check_fault(f) for f in json.loads(environ["wsgi.input"].read(length))]
    except (ValueError, TypeError) as e:
        body = json.dumps({"error": str(e)}).encode()
        start_response("400 Bad Request", [("Content-Type", "application/json")])
        return [body]
    with _ses_faults_lock:
        _ses_faults.extend(faults)
    start_response("204 No Content", [])
    return [b""]


DomainDispatcherApplication.__call__ = _call

_MOTO_MODULES = tuple(moto_backends.list_of_moto_modules())
moto_backends.list_of_moto_modules = lambda: _MOTO_MODULES

if __name__ == "__main__":
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    sys.argv[0] = re.sub(r"(-script\.pyw|\.exe)?$", "", sys.argv[0])
    sys.exit(main())
