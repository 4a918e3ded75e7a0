"""Generates the inputs of bench/run.sh: campaigns, recipient lists, send logs, mailmerge files.

Everything is made from the shipped campaign (campaign.toml, templates/letter.fr.md) so the
benchmark sends the letter a user would send. Run by bench/run.sh; not a library.
"""

import csv
import hashlib
import os
import re
import sys
from pathlib import Path

FIRST = ["Zoé", "Éloïse", "Françoise", "Gaëlle", "Noël", "Hélène", "Jérôme", "", "Anaïs", "Loïc"]
LAST = ["Durand", "Martin", "Lefebvre", "Moreau", "Girard", "Bonnet", "Dupont", "Lambert"]
AMOUNTS = ["40", "25", "50", "", "100", "10"]


def address(i):
    return f"person{i:07d}@example.com"


def recipients(path, count):
    """`count` distinct people, with the shipped list's columns; some first names and amounts empty."""
    with open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["email", "first_name", "last_name", "amount"])
        for i in range(count):
            writer.writerow([address(i), FIRST[i % 10], LAST[i % 8], AMOUNTS[i % 6]])


def sendlog(path, count, campaign_id):
    """A send log in which the first `count` people of `recipients` were sent (one record each)."""
    with open(path, "w", encoding="utf-8") as out:
        out.write(f'{{"at":"2026-11-25T01:00:00Z","event":"campaign","campaign":"{campaign_id}"}}\n')
        for i in range(count):
            rcpt = address(i)
            digest = hashlib.sha256(f"{campaign_id}\0{rcpt}".encode()).hexdigest()[:24]
            out.write(
                '{"at":"2026-11-25T01:02:03Z","event":"sent",'
                f'"reply":"250 2.0.0 Ok: queued as {i:X}","rcpt":"{rcpt}",'
                f'"message_id":"<{campaign_id}.{digest}@example.org>"}}\n'
            )


def letter(source, dest, stories):
    """The shipped letter with only its first `stories` stories (each with its problem and
    lesson): the whole letter makes ~24 KB messages, one story ~12 KB."""
    sections = re.split(r"(?m)^(?=::: )", Path(source).read_text(encoding="utf-8"))
    kept, seen = [], 0
    for section in sections:
        kind = section[4:].split("\n", 1)[0].strip() if section.startswith("::: ") else ""
        if kind == "story":
            seen += 1
        if kind in ("story", "problem", "lesson") and seen > stories:
            continue
        kept.append(section)
    Path(dest).write_text("".join(kept), encoding="utf-8")


def campaign(source, dest, letter_path, recipients_path, pool_size):
    """The shipped campaign.toml with our letter, list and pool size, and no rate limit. Its
    `[letters.<language>]` sections give way to one letter, with the default letter's subject and
    preheader: the benchmark measures one letter, as it always did."""
    text = Path(source).read_text(encoding="utf-8")
    language = re.search(r'(?m)^language\s*=\s*"([^"]+)"', text).group(1)
    default_letter = {}
    section = None
    for line in text.splitlines():
        header = re.match(r"^\[([^\]]+)\]", line)
        if header:
            section = header.group(1)
        elif section == f"letters.{language}" and re.match(r"^(subject|preheader)\s*=", line):
            default_letter[line.split("=", 1)[0].strip()] = line
    lines = []
    section = None
    for line in text.splitlines():
        header = re.match(r"^\[([^\]]+)\]", line)
        if header:
            section = header.group(1)
        if section is not None and section.startswith("letters."):
            continue
        if re.match(r"^(letter|recipients|rate|pool_size)\s*=", line):
            continue
        # The shipped suppression files are relative to the repository: name them absolutely.
        suppression = re.match(r'^(unsubscribed|bounced|complained)\s*=\s*"([^"]+)"', line)
        if suppression:
            path = (Path(source).parent / suppression.group(2)).resolve()
            line = f'{suppression.group(1)} = "{path}"'

        lines.append(line)
        if line.startswith("name_columns"):
            lines.extend(default_letter.values())
            lines.append(f'letter = "{letter_path}"')
            lines.append(f'recipients = "{recipients_path}"')
        if line.strip() == "[smtp]":
            lines.append(f"pool_size = {pool_size}")
    Path(dest).write_text("\n".join(lines) + "\n", encoding="utf-8")


def toml_value(campaign_path, key):
    for line in Path(campaign_path).read_text(encoding="utf-8").splitlines():
        match = re.match(rf'^{key}\s*=\s*"(.*)"', line)
        if match:
            return match.group(1)
    raise SystemExit(f"{campaign_path}: no {key}")


def mailmerge(campaign_path, letter_path, dest_dir, port, recipients_path):
    """mailmerge's three files: the same letter as Jinja2 Markdown (mailmerge turns it into
    multipart/alternative text + HTML), the same list, and plain SMTP to the sink with no limit."""
    dest = Path(dest_dir)
    body = Path(letter_path).read_text(encoding="utf-8")
    body = re.sub(r"<!--.*?-->\n*", "", body, flags=re.S)
    body = re.sub(r"(?m)^::: \w+\n", "", body)
    body = re.sub(r"\[\[(.*?)\]\]", lambda m: _optional(m.group(1)), body)
    body = re.sub(r"\{\{(\w+)\|([^}]*)\}\}", r"{{ \1 or '\2' }}", body)
    body = re.sub(r"\{\{(\w+)\}\}", r"{{ \1 }}", body)
    headers = (
        "TO: {{ first_name }} {{ last_name }} <{{ email }}>\n"
        f"SUBJECT: {toml_value(campaign_path, 'subject')}\n"
        f"FROM: {toml_value(campaign_path, 'from')}\n"
        f"REPLY-TO: {toml_value(campaign_path, 'reply_to')}\n"
        "MIME-Version: 1.0\n"
        "Content-Type: text/markdown\n\n"
    )
    (dest / "mailmerge_template.txt").write_text(headers + body, encoding="utf-8")
    (dest / "mailmerge_server.conf").write_text(
        f"[smtp_server]\nhost = 127.0.0.1\nport = {port}\nratelimit = 0\n", encoding="utf-8"
    )
    Path(dest / "mailmerge_database.csv").write_bytes(Path(recipients_path).read_bytes())


def files(folder, count, size):
    """`count` files of `size` random bytes (incompressible, as a PDF mostly is), r0.pdf…"""
    Path(folder).mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (Path(folder) / f"r{i}.pdf").write_bytes(os.urandom(size))


def receipts(path, count, folder, files_count):
    """`recipients`, each row naming its own receipt, `folder/r<i mod files_count>.pdf`."""
    with open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["email", "first_name", "last_name", "amount", "receipt"])
        for i in range(count):
            receipt = f"{folder}/r{i % files_count}.pdf"
            writer.writerow([address(i), FIRST[i % 10], LAST[i % 8], AMOUNTS[i % 6], receipt])


def with_key(source, dest, line):
    """The campaign file `source` with a top-level `line` (before its first table)."""
    lines = Path(source).read_text(encoding="utf-8").splitlines()
    first_table = next(i for i, text in enumerate(lines) if text.startswith("["))
    lines.insert(first_table, line)
    Path(dest).write_text("\n".join(lines) + "\n", encoding="utf-8")


def _optional(inner):
    fields = re.findall(r"\{\{(\w+)", inner)
    condition = " and ".join(fields) or "true"
    return f"{{% if {condition} %}}{inner}{{% endif %}}"


def main():
    command, *args = sys.argv[1:]
    if command == "recipients":
        recipients(args[0], int(args[1]))
    elif command == "sendlog":
        sendlog(args[0], int(args[1]), args[2])
    elif command == "letter":
        letter(args[0], args[1], int(args[2]))
    elif command == "campaign":
        campaign(args[0], args[1], args[2], args[3], int(args[4]))
    elif command == "files":
        files(args[0], int(args[1]), int(args[2]))
    elif command == "receipts":
        receipts(args[0], int(args[1]), args[2], int(args[3]))
    elif command == "with_key":
        with_key(args[0], args[1], args[2])
    elif command == "mailmerge":
        mailmerge(args[0], args[1], args[2], int(args[3]), args[4])
    else:
        raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    main()
