"""An independent reader of TensorBoard event files, for the tests: Debian's protobuf (the
schema in tensorboard_event.proto, compiled by protoc here) and crcmod's CRC-32C, nothing of
garmentnet's. Reads every events.out.tfevents.* file of a folder, checks each record's framing
(length, masked CRC-32C of the length and of the data) and prints JSON:
{"files": N, "file_version": ..., "scalars": {tag: [[step, value], ...]},
 "images": {tag: [{"step", "width", "height", "colorspace", "png_bytes", "is_png"}]},
 "torn_tail": bytes after the last whole record (a crash mid-write)}.
Exits 1 when a complete record fails its checksums."""
import glob
import importlib
import json
import os
import struct
import subprocess
import sys
import tempfile

import crcmod.predefined

crc32c = crcmod.predefined.mkCrcFun("crc-32c")


def masked(data):
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def event_class():
    here = os.path.dirname(os.path.abspath(__file__))
    out = tempfile.mkdtemp()
    subprocess.run(["protoc", "--proto_path=" + here, "--python_out=" + out,
                    os.path.join(here, "tensorboard_event.proto")], check=True)
    sys.path.insert(0, out)
    return importlib.import_module("tensorboard_event_pb2").Event


def records(data):
    """The data of each whole record, and the number of bytes left after the last one."""
    at = 0
    while at + 12 <= len(data):
        header = data[at:at + 8]
        (length,) = struct.unpack("<Q", header)
        (length_crc,) = struct.unpack("<I", data[at + 8:at + 12])
        if masked(header) != length_crc:
            sys.exit("record at byte %d: its length fails the checksum" % at)
        end = at + 12 + length + 4
        if end > len(data):
            break
        payload = data[at + 12:at + 12 + length]
        (data_crc,) = struct.unpack("<I", data[end - 4:end])
        if masked(payload) != data_crc:
            sys.exit("record at byte %d: its data fails the checksum" % at)
        yield payload
        at = end
    records.torn = len(data) - at


def main(folder):
    Event = event_class()
    out = {"files": 0, "file_version": None, "scalars": {}, "images": {}, "torn_tail": 0}
    for path in sorted(glob.glob(os.path.join(folder, "events.out.tfevents.*"))):
        out["files"] += 1
        with open(path, "rb") as f:
            data = f.read()
        for payload in records(data):
            event = Event.FromString(payload)
            if event.file_version:
                out["file_version"] = event.file_version
            for value in event.summary.value:
                if value.HasField("image"):
                    png = value.image.encoded_image_string
                    out["images"].setdefault(value.tag, []).append({
                        "step": event.step, "width": value.image.width,
                        "height": value.image.height, "colorspace": value.image.colorspace,
                        "png_bytes": len(png), "is_png": png[:8] == b"\x89PNG\r\n\x1a\n"})
                else:
                    out["scalars"].setdefault(value.tag, []).append(
                        [event.step, value.simple_value])
        out["torn_tail"] += records.torn
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1])
