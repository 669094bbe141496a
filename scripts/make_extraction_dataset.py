#!/usr/bin/env python3
"""Generate the synthetic German/English support-message extraction dataset.

Each message is built from phrase pools: a greeting, the request (one of six intents, sometimes naming
a product), optional sentences carrying an order number, an amount and an e-mail address, and a
closing; then lightly varied (lower case, missing final punctuation). The answer is the JSON object
of what the message states: ``intent`` and ``language`` always, ``order_id``, ``product``, ``amount``
and ``email`` only when mentioned, copied verbatim. All randomness comes from one
``random.Random(seed)``, so the output is byte-identical for the same ``--seed`` and ``--n``.
Stdlib only.

Usage::

    python scripts/make_extraction_dataset.py --seed 0 --n 400
"""
from __future__ import annotations

import argparse
import hashlib
import json
import random
from collections import Counter
from pathlib import Path

INTENTS = ("refund", "delivery_status", "cancel_order", "change_address", "damaged_item", "login_problem")
SYSTEM = ("Extract the support request as JSON with the keys intent (one of " + ", ".join(INTENTS) + "), "
          "language (de or en) and, only if the message mentions them, order_id, product, amount and email, "
          "copied exactly as written. Answer with the JSON object only.")
DEFAULT_OUT = (Path(__file__).resolve().parent.parent
               / "plugins" / "ftframe_datasets" / "extraction" / "messages.jsonl")
PRODUCTS = ("Router X200", "HomeHub 2", "SmartPlug Mini", "Kaffeemaschine Aroma 5", "Headset Pro 3",
            "Wasserkocher K1", "Tablet Nova 10", "Drucker LaserJet S", "Fitness Band Go", "Staubsauger Turbo 7")
MAIL_USERS = ("max.mustermann", "erika.beispiel", "j.doe", "sam.sample", "anna.platzhalter", "test.kunde")
MAIL_DOMAINS = ("example.com", "example.org", "example.net")

# {p} marks where a product name goes; templates without {p} mention none.
CORE = {
    ("refund", "en"): ["I would like a refund for the {p}.", "Please refund my money, I sent the {p} back.",
                       "I returned my order two weeks ago and still have no refund.",
                       "Can you give me my money back? I don't want the {p} anymore.",
                       "Where is my refund? The return arrived at your warehouse last week."],
    ("refund", "de"): ["Ich möchte eine Erstattung für den {p}.", "Bitte erstatten Sie mir den Betrag, der {p} ist zurück.",
                       "Ich habe die Bestellung vor zwei Wochen zurückgeschickt und noch kein Geld bekommen.",
                       "Kann ich mein Geld zurückbekommen? Ich will den {p} nicht mehr.",
                       "Wo bleibt meine Rückerstattung? Die Retoure ist seit letzter Woche bei Ihnen."],
    ("delivery_status", "en"): ["Where is my {p}? It should have arrived by now.",
                                "My parcel still hasn't arrived, can you check the status?",
                                "The tracking for my {p} hasn't changed in five days.",
                                "When will my order be delivered?",
                                "Could you tell me when the {p} will ship?"],
    ("delivery_status", "de"): ["Wo ist mein {p}? Er hätte längst ankommen sollen.",
                                "Mein Paket ist immer noch nicht da, können Sie den Status prüfen?",
                                "Die Sendungsverfolgung für den {p} steht seit fünf Tagen still.",
                                "Wann wird meine Bestellung geliefert?",
                                "Können Sie mir sagen, wann der {p} verschickt wird?"],
    ("cancel_order", "en"): ["Please cancel my order for the {p}.", "I want to cancel my order before it ships.",
                             "I ordered the {p} by mistake, please cancel it.",
                             "Cancel the order please, I found it cheaper elsewhere.",
                             "I no longer need the {p}, please stop the order."],
    ("cancel_order", "de"): ["Bitte stornieren Sie meine Bestellung für den {p}.",
                             "Ich möchte meine Bestellung stornieren, bevor sie verschickt wird.",
                             "Ich habe den {p} aus Versehen bestellt, bitte stornieren.",
                             "Bitte die Bestellung stornieren, ich habe es woanders günstiger gefunden.",
                             "Ich brauche den {p} nicht mehr, bitte die Bestellung stoppen."],
    ("change_address", "en"): ["Please change the delivery address for my {p} to my office.",
                               "I moved, please send my order to my new address.",
                               "Can you deliver the {p} to my neighbour's address instead?",
                               "There is a typo in my street name, please correct the shipping address.",
                               "Please update the address on my order before it ships."],
    ("change_address", "de"): ["Bitte ändern Sie die Lieferadresse für den {p} auf mein Büro.",
                               "Ich bin umgezogen, bitte schicken Sie die Bestellung an meine neue Adresse.",
                               "Können Sie den {p} stattdessen an die Adresse meines Nachbarn liefern?",
                               "Im Straßennamen ist ein Tippfehler, bitte korrigieren Sie die Lieferadresse.",
                               "Bitte aktualisieren Sie die Adresse meiner Bestellung vor dem Versand."],
    ("damaged_item", "en"): ["The {p} arrived broken.", "My {p} was damaged in the box, the screen is cracked.",
                             "The parcel was crushed and the item inside is broken.",
                             "The {p} doesn't work, it arrived with a dent.",
                             "Everything in the package was smashed, please send a replacement."],
    ("damaged_item", "de"): ["Der {p} ist kaputt angekommen.", "Mein {p} war im Karton beschädigt, das Display ist gesprungen.",
                             "Das Paket war zerdrückt und der Artikel darin ist kaputt.",
                             "Der {p} funktioniert nicht, er kam mit einer Delle an.",
                             "Alles im Paket war zerbrochen, bitte schicken Sie Ersatz."],
    ("login_problem", "en"): ["I can't log in to my account anymore.", "The password reset link never arrives.",
                              "My account is locked after too many login attempts.",
                              "I can't sign in to the app to check my {p} order.",
                              "The login page says my password is wrong, but it isn't."],
    ("login_problem", "de"): ["Ich kann mich nicht mehr in mein Konto einloggen.",
                              "Der Link zum Zurücksetzen des Passworts kommt nie an.",
                              "Mein Konto ist nach zu vielen Anmeldeversuchen gesperrt.",
                              "Ich kann mich nicht in der App anmelden, um meine Bestellung für den {p} zu sehen.",
                              "Die Anmeldeseite sagt, mein Passwort sei falsch, ist es aber nicht."],
}
GREETING = {"en": ("Hello,", "Hi there,", "Dear support team,", "Hey,", ""),
            "de": ("Hallo,", "Guten Tag,", "Liebes Support-Team,", "Moin,", "")}
ORDER = {"en": ("My order number is {v}.", "Order {v}.", "It's about order {v}.", "Order no. {v}"),
         "de": ("Meine Bestellnummer ist {v}.", "Bestellung {v}.", "Es geht um die Bestellung {v}.", "Bestellnr. {v}")}
AMOUNT = {"en": ("I paid {v} for it.", "The amount was {v}.", "You charged me {v}."),
          "de": ("Ich habe {v} bezahlt.", "Der Betrag war {v}.", "Sie haben mir {v} abgebucht.")}
EMAIL = {"en": ("You can reach me at {v}.", "My e-mail is {v}.", "Please reply to {v}."),
         "de": ("Sie erreichen mich unter {v}.", "Meine E-Mail ist {v}.", "Bitte antworten Sie an {v}.")}
CLOSING = {"en": ("Thanks!", "Best regards", "Thank you in advance.", "Cheers", ""),
           "de": ("Danke!", "Viele Grüße", "Vielen Dank im Voraus.", "Gruß", "")}
AMOUNT_INTENTS = {"refund", "damaged_item", "cancel_order"}


def amount(rng: random.Random, lang: str) -> str:
    value = f"{rng.randint(5, 499)}{',' if lang == 'de' else '.'}{rng.choice(('00', '49', '90', '99'))}"
    return rng.choice((f"{value} €", f"{value} EUR", f"€{value}")) if lang == "en" else rng.choice((f"{value} €", f"{value} Euro"))


def message(rng: random.Random) -> tuple[str, dict[str, str]]:
    intent = rng.choice(INTENTS)
    lang = "de" if rng.random() < 0.5 else "en"
    core = rng.choice(CORE[(intent, lang)])
    fields: dict[str, str] = {"intent": intent, "language": lang}
    if "{p}" in core:
        fields["product"] = rng.choice(PRODUCTS)
        core = core.replace("{p}", fields["product"])
    parts = [rng.choice(GREETING[lang]), core]
    extras = []
    if intent != "login_problem" and rng.random() < 0.7:
        fields["order_id"] = f"{rng.choice('ABCDKM')}-{rng.randint(10000, 99999)}"
        extras.append(rng.choice(ORDER[lang]).replace("{v}", fields["order_id"]))
    if intent in AMOUNT_INTENTS and rng.random() < 0.45:
        fields["amount"] = amount(rng, lang)
        extras.append(rng.choice(AMOUNT[lang]).replace("{v}", fields["amount"]))
    if rng.random() < 0.3:
        fields["email"] = f"{rng.choice(MAIL_USERS)}@{rng.choice(MAIL_DOMAINS)}"
        extras.append(rng.choice(EMAIL[lang]).replace("{v}", fields["email"]))
    rng.shuffle(extras)
    parts += extras + [rng.choice(CLOSING[lang])]
    text = " ".join(p for p in parts if p)
    if rng.random() < 0.15:
        # a lower-case message; the extracted values keep their spelling (they are copied, not retyped)
        text = text.lower()
        for key in ("product", "order_id", "amount", "email"):
            if key in fields:
                text = text.replace(fields[key].lower(), fields[key])
    return text, fields


def generate(seed: int, n: int) -> list[dict]:
    rng = random.Random(seed)
    rows, seen = [], set()
    while len(rows) < n:
        text, fields = message(rng)
        if text in seen:
            continue
        seen.add(text)
        answer = {k: fields[k] for k in ("intent", "language", "order_id", "product", "amount", "email") if k in fields}
        rows.append({"messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": text},
                                  {"role": "assistant", "content": json.dumps(answer, ensure_ascii=False)}]})
    return rows


def check(rows: list[dict]) -> None:
    """Every extracted value occurs verbatim in its message; print the statistics the README quotes."""
    stats: Counter[str] = Counter()
    for row in rows:
        text = row["messages"][1]["content"]
        answer = json.loads(row["messages"][2]["content"])
        for key, value in answer.items():
            if key not in ("intent", "language"):
                assert value in text, (key, value, text)
            stats[key] += 1
        stats[f"intent={answer['intent']}"] += 1
        stats[f"language={answer['language']}"] += 1
    for key in sorted(stats):
        print(f"{key:28} {stats[key]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()
    rows = generate(args.seed, args.n)
    check(rows)
    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(data)
    print(f"wrote {len(rows)} messages to {args.out} (sha256 {hashlib.sha256(data).hexdigest()})")


if __name__ == "__main__":
    main()
