#!/usr/bin/env python3
"""benches/peer/peer.py: a CAN-to-Stream-API bridge written the way a user writes one today.

cantools decodes every frame of a `candump -L` log with the car's DBC, and grpcio sends the
values as RowData packets through the Stream API: one session, one configuration naming every
signal, one RowData packet per message per 1 000 rows, one unary WriteDataPacket at a time.
The `replay_case` benchmark runs it against the same capture and server as ecu-bridge.

Usage: peer.py --dbc CAR.dbc --capture drive.log --endpoint 127.0.0.1:PORT --proto-dir proto
Prints one line: `samples=N frames=N packets=N`, then the versions of Python and of the
libraries it ran on (a peer's speed depends on them).
"""

import argparse
import importlib
import os
import re
import sys
import tempfile
import uuid

import cantools
import google.protobuf as protobuf
import grpc
from grpc_tools import protoc

ROWS_PER_PACKET = 1000
LINE = re.compile(r"\((\d+)\.(\d+)\)\s+(\S+)\s+([0-9A-Fa-f]+)#([0-9A-Fa-f]*)")


def stubs(proto_dir, out_dir):
    """Generates the Python messages and stubs from the project's protos."""
    files = []
    for root, _, names in os.walk(proto_dir):
        files += [os.path.join(root, n) for n in names if n.endswith(".proto")]
    include = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    args = ["protoc", f"-I{proto_dir}", f"-I{include}", f"--python_out={out_dir}",
            f"--grpc_python_out={out_dir}"] + files
    if protoc.main(args) != 0:
        sys.exit("protoc failed")
    sys.path.insert(0, out_dir)
    api = importlib.import_module("ma.streaming.api.v1.api_pb2")
    api_grpc = importlib.import_module("ma.streaming.api.v1.api_pb2_grpc")
    data = importlib.import_module("ma.streaming.open_data.v1.open_data_pb2")
    return api, api_grpc, data


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dbc", required=True)
    parser.add_argument("--capture", required=True)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--proto-dir", required=True)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as out_dir:
        api, api_grpc, data = stubs(args.proto_dir, out_dir)
        run(args, api, api_grpc, data)


def loadable(text):
    """The DBC without what cantools refuses in opendbc's Civic file: a message comment
    written as a signal comment without a signal name, and messages whose 11-bit id is wider
    than 11 bits (with everything that names them)."""
    text = re.sub(r'^CM_ SG_ \d+ "[^"]*";\s*$', "", text, flags=re.M)
    too_wide = {m for m in re.findall(r"^BO_ (\d+) ", text, flags=re.M)
                if 0x7FF < int(m) < 0x80000000}
    kept, skipping = [], False
    for line in text.splitlines():
        words = line.split()
        if line.startswith("BO_ "):
            skipping = words[1] in too_wide
        elif not line.startswith(" "):
            skipping = False
        if skipping or any(w in too_wide for w in words[1:4]):
            continue
        kept.append(line)
    return "\n".join(kept) + "\n"


def run(args, api, api_grpc, data):
    with open(args.dbc) as dbc:
        db = cantools.database.load_string(loadable(dbc.read()), database_format="dbc",
                                           strict=False)
    channel = grpc.insecure_channel(args.endpoint)
    sessions = api_grpc.SessionManagementServiceStub(channel)
    formats = api_grpc.DataFormatManagerServiceStub(channel)
    writer = api_grpc.PacketWriterServiceStub(channel)
    source = "PythonPeer"

    created = sessions.CreateSession(api.CreateSessionRequest(
        data_source=source, type="Session", version=1, identifier="python peer"))
    key = created.session_key
    next_id = [0]

    def write(kind, message, essential=False):
        packet = data.Packet(type=kind, session_key=key, content=message.SerializeToString(),
                             id=next_id[0], is_essential=essential)
        next_id[0] += 1
        writer.WriteDataPacket(api.WriteDataPacketRequest(detail=api.DataPacketDetails(
            message=packet, data_source=source, stream="", session_key=key)))

    write("NewSession", data.NewSessionPacket(data_source=source))
    definitions = []
    for message in db.messages:
        for signal in message.signals:
            low = signal.minimum if signal.minimum is not None else 0.0
            high = signal.maximum if signal.maximum is not None else 0.0
            definitions.append(data.ParameterDefinition(
                identifier=f"{message.name}.{signal.name}:Civic", name=signal.name,
                application_name="Civic", units=signal.unit or "",
                data_type=data.DATA_TYPE_FLOAT64, min_value=low,
                max_value=high if high > low else low + 1.0, includes_row_data=True))
    write("Configuration", data.ConfigurationPacket(
        config_id=str(uuid.uuid4()), parameter_definitions=definitions,
        group_definitions=[data.GroupDefinition(identifier="Civic", name="Civic",
                                                application_name="Civic")]), essential=True)

    format_ids = {}
    pending = {}
    samples = frames = packets = 0

    def flush(message):
        nonlocal packets
        timestamps, rows = pending.pop(message.frame_id)
        row_data = data.RowDataPacket(
            data_format=data.SampleDataFormat(data_format_identifier=format_ids[message.frame_id]),
            timestamps=timestamps)
        for values in rows:
            row = row_data.rows.add()
            for value in values:
                row.double_samples.samples.add(value=value, status=data.DATA_STATUS_VALID)
        write("RowData", row_data)
        packets += 1

    with open(args.capture) as capture:
        for line in capture:
            match = LINE.match(line)
            if not match:
                continue
            seconds, fraction, _, can_id, payload = match.groups()
            try:
                message = db.get_message_by_frame_id(int(can_id, 16))
            except KeyError:
                continue
            decoded = message.decode(bytes.fromhex(payload), decode_choices=False)
            frames += 1
            if message.frame_id not in format_ids:
                names = [f"{message.name}.{s.name}:Civic" for s in message.signals]
                format_ids[message.frame_id] = formats.GetParameterDataFormatId(
                    api.GetParameterDataFormatIdRequest(data_source=source, parameters=names)
                ).data_format_identifier
            time_ns = int(seconds) * 1_000_000_000 + int(fraction.ljust(9, "0")[:9])
            timestamps, rows = pending.setdefault(message.frame_id, ([], []))
            timestamps.append(time_ns)
            rows.append([float(decoded[s.name]) for s in message.signals])
            samples += len(message.signals)
            if len(rows) >= ROWS_PER_PACKET:
                flush(message)
    for frame_id in list(pending):
        flush(db.get_message_by_frame_id(frame_id))

    write("EndOfSession", data.EndOfSessionPacket(data_source=source))
    sessions.EndSession(api.EndSessionRequest(data_source=source, session_key=key))
    versions = " ".join(f"{name}={module.__version__}" for name, module in
                        (("cantools", cantools), ("grpcio", grpc), ("protobuf", protobuf)))
    print(f"samples={samples} frames={frames} packets={packets} "
          f"python={sys.version.split()[0]} {versions}")


if __name__ == "__main__":
    main()
