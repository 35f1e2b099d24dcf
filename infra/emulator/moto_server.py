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
sleeps in between. Everything else is moto's.
"""

import itertools
import re
import sys
import threading
import time

from moto.server import main
from moto.sqs.models import Queue, SQSBackend


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

if __name__ == "__main__":
    sys.argv[0] = re.sub(r"(-script\.pyw|\.exe)?$", "", sys.argv[0])
    sys.exit(main())
