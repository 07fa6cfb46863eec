#!/usr/bin/env python3
"""A lean SMPP 3.4 load client for the gateway benchmark (standard library only).

Binds B transceivers, then submits single-part messages asking for a receipt
(registered_delivery 1) at a target rate for D seconds, keeping at most W unanswered submits
per bind, and answers every deliver_sm. Pre-encoded PDUs, batched writes and a header-only
parser keep its own CPU low; `--procs N` splits the binds and the rate over N processes.

Prints one JSON object: submits sent, answers by command_status (0x58 ESME_RTHROTTLED, 0x14
ESME_RMSGQFUL, others), receipts (deliver_sm with esm_class 0x04) and how many said DELIVRD,
the rate of receipts over the measured window [--skip, D] (seconds from the first submit), a
per-second series of accepted submits and receipts, and the client's own CPU (cores).

Usage: smpp_load.py HOST PORT SYSTEM_ID PASSWORD [--binds 4] [--window 1000] [--rate 50000]
       [--duration 10] [--skip 2] [--drain 10] [--procs 1] [--to 447700900123]
"""
import argparse
import asyncio
import json
import os
import resource
import signal
import struct
import sys
import time

HDR = struct.Struct(">IIII")
BIND_TRX, BIND_TRX_RESP = 0x00000009, 0x80000009
SUBMIT, SUBMIT_RESP = 0x00000004, 0x80000004
DELIVER, DELIVER_RESP = 0x00000005, 0x80000005
ENQUIRE, ENQUIRE_RESP = 0x00000015, 0x80000015
UNBIND, UNBIND_RESP = 0x00000006, 0x80000006
GENERIC_NACK = 0x80000000


def cstr(s: str) -> bytes:
    return s.encode() + b"\0"


def submit_body(to: str, text: str) -> bytes:
    sm = text.encode("ascii")
    return (cstr("")                          # service_type
            + bytes([5, 0]) + cstr("ACME")    # source: alphanumeric
            + bytes([1, 1]) + cstr(to)        # destination: international, ISDN
            + bytes([0, 0, 0])                # esm_class, protocol_id, priority_flag
            + cstr("") + cstr("")             # schedule_delivery_time, validity_period
            + bytes([1, 0, 0, 0, len(sm)])    # registered_delivery 1, replace, coding 0, default id, sm_length
            + sm)


class Stats:
    def __init__(self):
        self.sent = 0
        self.status = {}          # command_status of submit_sm_resp -> count
        self.receipts = 0
        self.delivrd = 0
        self.acc_series = {}      # second -> accepted submits
        self.rcpt_series = {}     # second -> receipts
        self.rcpt_times = []      # (t) of receipts, bucketed at 10 ms to keep it small
        self.first_submit = None
        self.last_receipt = None


class Bind:
    def __init__(self, args, stats: Stats, t0: float, share: float):
        self.a, self.st, self.t0, self.rate = args, stats, t0, share
        self.body = submit_body(args.to, args.text)
        self.seq = 1
        self.outstanding = 0
        self.unanswered_total = 0
        self.bound = asyncio.get_event_loop().create_future()
        self.done_sending = False

    async def run(self, end_at: float, drain_until_fn):
        r, w = await asyncio.open_connection(self.a.host, self.a.port, limit=1 << 20)
        self.w = w
        body = cstr(self.a.system_id) + cstr(self.a.password) + cstr("") + bytes([0x34, 0, 0]) + cstr("")
        w.write(HDR.pack(16 + len(body), BIND_TRX, 0, self.next_seq()) + body)
        reader = asyncio.ensure_future(self.read(r))
        status = await asyncio.wait_for(self.bound, 10)
        if status != 0:
            raise SystemExit(f"bind refused: 0x{status:02X}")
        await asyncio.sleep(max(0.0, self.t0 - time.monotonic()))   # every bind starts at t0
        await self.send_loop(end_at)
        self.done_sending = True
        await drain_until_fn(self)
        w.write(HDR.pack(16, UNBIND, 0, self.next_seq()))
        try:
            await asyncio.wait_for(reader, 2)
        except (asyncio.TimeoutError, ConnectionError):
            reader.cancel()
        w.close()

    def next_seq(self) -> int:
        s = self.seq
        self.seq = s + 1 if s < 0x7FFFFFFF else 1
        return s

    async def send_loop(self, end_at: float):
        st, a = self.st, self.a
        length = 16 + len(self.body)
        pack, body = HDR.pack, self.body
        start = time.monotonic()
        sent = 0
        while True:
            now = time.monotonic()
            if now >= end_at:
                break
            due = int((now - start) * self.rate) + 1 - sent
            room = a.window - self.outstanding
            n = min(due, room)
            if n > 0:
                if st.first_submit is None:
                    st.first_submit = now
                parts = []
                for _ in range(n):
                    parts.append(pack(length, SUBMIT, 0, self.next_seq()))
                    parts.append(body)
                self.w.write(b"".join(parts))
                self.outstanding += n
                sent += n
                st.sent += n
            await asyncio.sleep(0.002)

    async def read(self, r: asyncio.StreamReader):
        st, t0 = self.st, self.t0
        buf = b""
        unpack = HDR.unpack_from
        while True:
            data = await r.read(1 << 20)
            if not data:
                return
            buf = buf + data if buf else data
            off, n = 0, len(buf)
            out = []
            now = time.monotonic()
            sec = int(now - t0)
            while n - off >= 16:
                length, cid, status, seq = unpack(buf, off)
                if n - off < length:
                    break
                if cid == SUBMIT_RESP:
                    self.outstanding -= 1
                    st.status[status] = st.status.get(status, 0) + 1
                    if status == 0:
                        st.acc_series[sec] = st.acc_series.get(sec, 0) + 1
                elif cid == DELIVER:
                    pdu = buf[off + 16:off + length]
                    out.append(HDR.pack(17, DELIVER_RESP, 0, seq) + b"\0")
                    st.receipts += 1
                    if b"stat:DELIVRD" in pdu:
                        st.delivrd += 1
                    st.rcpt_series[sec] = st.rcpt_series.get(sec, 0) + 1
                    st.last_receipt = now
                elif cid == ENQUIRE:
                    out.append(HDR.pack(16, ENQUIRE_RESP, 0, seq))
                elif cid == BIND_TRX_RESP:
                    if not self.bound.done():
                        self.bound.set_result(status)
                elif cid == UNBIND_RESP:
                    return
                elif cid == UNBIND:
                    out.append(HDR.pack(16, UNBIND_RESP, 0, seq))
                elif cid == GENERIC_NACK:
                    self.outstanding -= 1
                    st.status[-1] = st.status.get(-1, 0) + 1
                off += length
            buf = buf[off:]
            if out:
                self.w.write(b"".join(out))


async def child(args, binds: int, rate: float, t0: float) -> dict:
    st = Stats()
    end_at = t0 + args.duration
    drain_end = end_at + args.drain
    share = rate / binds

    async def drain(bind: Bind):
        # Until every accepted submit of this process has its receipt (or the drain ends).
        while time.monotonic() < drain_end:
            accepted = st.status.get(0, 0)
            if bind.outstanding <= 0 and st.receipts >= accepted:
                return
            await asyncio.sleep(0.02)

    bs = [Bind(args, st, t0, share) for _ in range(binds)]
    await asyncio.gather(*(b.run(end_at, drain) for b in bs))
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "sent": st.sent,
        "status": {str(k): v for k, v in st.status.items()},
        "receipts": st.receipts,
        "delivrd": st.delivrd,
        "acc_series": st.acc_series,
        "rcpt_series": st.rcpt_series,
        "first_submit": st.first_submit,
        "last_receipt": st.last_receipt,
        "cpu_s": ru.ru_utime + ru.ru_stime,
    }


def main():
    p = argparse.ArgumentParser()
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("system_id")
    p.add_argument("password")
    p.add_argument("--binds", type=int, default=4)
    p.add_argument("--window", type=int, default=1000)
    p.add_argument("--rate", type=float, default=50000)
    p.add_argument("--duration", type=float, default=10)
    p.add_argument("--skip", type=float, default=2, help="seconds of ramp left out of the measured window")
    p.add_argument("--drain", type=float, default=10)
    p.add_argument("--procs", type=int, default=1)
    p.add_argument("--to", default="447700900123")
    p.add_argument("--text", default="Benchmark message over SMPP")
    args = p.parse_args()
    procs = max(1, min(args.procs, args.binds))

    t0 = time.monotonic() + 1.0   # every process binds first, then all submit from t0
    wall0 = time.time()
    pipes = []

    def stop(signum, _frame):
        # Stopped early (the benchmark's trap): take the load processes down too.
        for pid, _ in pipes:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for i in range(procs):
        binds = args.binds // procs + (1 if i < args.binds % procs else 0)
        rd, wr = os.pipe()
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.close(rd)
            res = asyncio.run(child(args, binds, args.rate * binds / args.binds, t0))
            with os.fdopen(wr, "w") as f:
                json.dump(res, f)
            os._exit(0)
        os.close(wr)
        pipes.append((pid, rd))
    results = []
    for pid, rd in pipes:
        with os.fdopen(rd) as f:
            data = f.read()
        os.waitpid(pid, 0)
        if not data:
            sys.exit("a load process failed")
        results.append(json.loads(data))

    def merge(key):
        out = {}
        for r in results:
            for k, v in r[key].items():
                out[int(k)] = out.get(int(k), 0) + v
        return out

    status = merge("status")
    acc, rcpt = merge("acc_series"), merge("rcpt_series")
    firsts = [r["first_submit"] for r in results if r["first_submit"]]
    lasts = [r["last_receipt"] for r in results if r["last_receipt"]]
    receipts = sum(r["receipts"] for r in results)
    # Measured window: whole seconds [skip, duration) after t0.
    lo, hi = int(args.skip), int(args.duration)
    in_window = sum(rcpt.get(s, 0) for s in range(lo, hi))
    acc_window = sum(acc.get(s, 0) for s in range(lo, hi))
    span = (max(lasts) - min(firsts)) if firsts and lasts else 0.0
    out = {
        "target_rate": args.rate,
        "binds": args.binds,
        "procs": procs,
        "window": args.window,
        "duration_s": args.duration,
        "sent": sum(r["sent"] for r in results),
        "accepted": status.get(0, 0),
        "throttled_0x58": status.get(0x58, 0),
        "msgqful_0x14": status.get(0x14, 0),
        "other_errors": {hex(k) if k >= 0 else "generic_nack": v for k, v in status.items()
                         if k not in (0, 0x58, 0x14)},
        "receipts": receipts,
        "delivrd": sum(r["delivrd"] for r in results),
        "window_s": [lo, hi],
        "accepted_per_s_window": round(acc_window / max(1, hi - lo)),
        "delivered_per_s_window": round(in_window / max(1, hi - lo)),
        "delivered_per_s_overall": round(receipts / span) if span > 0 else 0,
        "first_submit_to_last_receipt_s": round(span, 3),
        "client_cpu_cores": round(sum(r["cpu_s"] for r in results) / max(1e-9, time.time() - wall0), 3),
        "series_accepted": [acc.get(s, 0) for s in range(0, max(list(acc) + list(rcpt) + [0]) + 1)],
        "series_receipts": [rcpt.get(s, 0) for s in range(0, max(list(acc) + list(rcpt) + [0]) + 1)],
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
