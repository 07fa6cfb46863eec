"""Interop: the Python `smpplib` client (not ours) binds to an SMSC of ours (the simulator, or
`smsroute serve`), submits GSM and UCS-2 multipart messages with receipts asked for, and reads
every receipt back; with --bad-password, first checks a wrong password is refused.

Usage: python smpplib_client.py PORT [SYSTEM_ID PASSWORD] [--bad-password]
(defaults acme / secret, as the simulator runs in interop/run.sh)
"""
import sys
import time

import smpplib.client
import smpplib.consts
import smpplib.exceptions
import smpplib.gsm

args = [a for a in sys.argv[1:] if not a.startswith("--")]
port = int(args[0])
system_id, password = (args[1], args[2]) if len(args) >= 3 else ("acme", "secret")

if "--bad-password" in sys.argv:
    wrong = smpplib.client.Client("127.0.0.1", port, allow_unknown_opt_params=True)
    wrong.connect()
    try:
        wrong.bind_transceiver(system_id=system_id, password=password + "x")
        sys.exit("a wrong password was accepted")
    except smpplib.exceptions.PDUError as e:
        assert e.args[1] == smpplib.consts.SMPP_ESME_RINVPASWD, e.args
        print(f"smpplib interop: wrong password refused ({e.args[0]})")
    wrong.disconnect()
sent_ids = []
receipts = []


def on_sent(pdu):
    if pdu.status == 0:
        sent_ids.append(pdu.message_id.decode() if isinstance(pdu.message_id, bytes) else pdu.message_id)


def on_received(pdu):
    rid = getattr(pdu, "receipted_message_id", None)
    if isinstance(rid, bytes):
        rid = rid.decode()
    text = pdu.short_message.decode("ascii", "replace") if isinstance(pdu.short_message, bytes) else str(pdu.short_message)
    receipts.append((rid, text))


client = smpplib.client.Client("127.0.0.1", port, allow_unknown_opt_params=True)
client.set_message_sent_handler(on_sent)
client.set_message_received_handler(on_received)
client.connect()
client.bind_transceiver(system_id=system_id, password=password)

parts_sent = 0
for text in ["Interop GSM multipart. " * 10, "Многочастное сообщение UCS-2. " * 5]:
    parts, coding, esm_class = smpplib.gsm.make_parts(text)
    assert len(parts) >= 2, f"expected a multipart message, got {len(parts)} part(s)"
    for part in parts:
        client.send_message(
            source_addr_ton=smpplib.consts.SMPP_TON_ALNUM,
            source_addr_npi=smpplib.consts.SMPP_NPI_UNK,
            source_addr="ACME",
            dest_addr_ton=smpplib.consts.SMPP_TON_INTL,
            dest_addr_npi=smpplib.consts.SMPP_NPI_ISDN,
            destination_addr="447700900123",
            short_message=part,
            data_coding=coding,
            esm_class=esm_class,
            registered_delivery=True,
        )
        parts_sent += 1

deadline = time.time() + 10
client._socket.settimeout(0.5)
while (len(sent_ids) < parts_sent or len(receipts) < parts_sent) and time.time() < deadline:
    try:
        client.read_once()
    except Exception as e:  # a read timeout: keep polling until the deadline
        if "timed out" not in str(e):
            raise

assert len(sent_ids) == parts_sent, f"{len(sent_ids)} of {parts_sent} parts acked"
assert len(receipts) == parts_sent, f"{len(receipts)} of {parts_sent} receipts"
for rid, text in receipts:
    assert rid in sent_ids, f"receipt for unknown id {rid}"
    assert "stat:DELIVRD" in text, text
client.unbind()
client.disconnect()
print(f"smpplib interop: {parts_sent} parts acked, {len(receipts)} receipts matched")
