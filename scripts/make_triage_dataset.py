#!/usr/bin/env python3
"""Generate the synthetic German/English support-ticket triage dataset.

Each ticket is composed from phrase pools (opener, context, core request,
optional distractor, details, closer, signature) and then lightly "messed up"
(typos, lower case, missing punctuation, ALL CAPS). All randomness comes from
one ``random.Random(seed)``, so the output is byte-identical for the same
``--seed`` and ``--n``. Stdlib only.

Labelling rule: the label is what the customer asks the company to *do*;
vocabulary of other categories may appear as background or cause.

Usage::

    python scripts/make_triage_dataset.py --seed 0 --n 720
"""
from __future__ import annotations

import argparse
import json
import random
import re
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

SYSTEM = (
    "Classify the support ticket. Categories: billing, technical, account, "
    "shipping, cancellation, privacy. Answer with the category only."
)
LABELS = ("billing", "technical", "account", "shipping", "cancellation", "privacy")
LABEL_WEIGHTS = {"billing": 1.2, "technical": 1.25, "account": 1.0,
                 "shipping": 1.1, "cancellation": 0.9, "privacy": 0.8}
GERMAN_SHARE = 0.55
DISTRACTOR_P = 0.34  # per non-short ticket; short tickets never carry one
COMBO_SHARE = 0.4  # of distractor tickets: cause+request combo instead of a side mention
DEFAULT_OUT = (Path(__file__).resolve().parent.parent
               / "plugins" / "ftframe_datasets" / "triage" / "tickets.jsonl")

TONES = ("polite", "formal", "informal", "angry", "terse", "rambling")
TONE_WEIGHTS = (0.28, 0.18, 0.18, 0.14, 0.10, 0.12)
SHAPE_WEIGHTS = {  # (short, medium, long)
    "polite": (0.08, 0.57, 0.35), "formal": (0.0, 0.5, 0.5),
    "informal": (0.25, 0.6, 0.15), "angry": (0.12, 0.58, 0.30),
    "terse": (0.75, 0.25, 0.0), "rambling": (0.0, 0.0, 1.0),
}


def _lines(block: str) -> tuple[str, ...]:
    """Split a pool block into stripped, non-empty lines."""
    return tuple(s.strip() for s in block.strip().splitlines() if s.strip())


# --------------------------------------------------------------------------
# Phrase pools. Template syntax: {a|b|c} random choice, {F:formal|informal}
# German form of address (Sie vs. ihr/du), <slot> generated detail.
# --------------------------------------------------------------------------

CORE: dict[tuple[str, str], tuple[str, ...]] = {
    ("billing", "en"): _lines("""
        Please refund the second charge of <amount> that was taken on <date>.
        Could you check why I was charged twice for the same order and give me my money back?
        I need a corrected invoice with my company's VAT number on it.
        Please switch my payment method from credit card to direct debit.
        Can you explain why my monthly fee went up to <amount> without any notice?
        I'd like the overcharged amount credited back to my card.
        Please send me a copy of invoice <invoice>, I can't find it anywhere.
        You debited <amount> although I had already paid by bank transfer, please reverse it.
        I was promised a 20% discount but the invoice shows the full price, please correct the amount.
        Please change the address printed on my invoices to my new office.
        When will I get the money back for the item I returned? It's been <days> days.
        Please stop charging my old card and use the new one I added.
        My bank statement shows a payment of <amount> to you that I can't match to any order. What is it for?
        Could I pay the <amount> in instalments? I can't pay it all at once.
        I paid invoice <invoice> twice by mistake, please refund one of the payments.
        The reminder fee of <amount> is unjustified because I paid on time, please waive it.
        Please issue a credit note for the days the service was unavailable.
        Why does my invoice list a "service fee" I never agreed to? Please remove it.
        I need all invoices from last year as PDFs for my tax return.
        The VAT on invoice <invoice> was calculated at the wrong rate, please reissue it.
        Can I pay by bank transfer instead of credit card from now on?
        The price at checkout was lower than what you actually charged, I want the difference back.
        My direct debit bounced and now there's a fee. How do I settle the open amount?
        Please confirm that the outstanding balance of <amount> has now been paid.
        I was charged for the annual plan although I chose monthly payment. Please correct this and refund the difference.
        Your voucher code wasn't applied when I paid, can you credit me the <amount>?
        Please issue the invoices in my company's name instead of my private name.
        I want my money back for the charge on <date>, I never authorised it.
    """),
    ("billing", "de"): _lines("""
        Bitte {F:erstatten Sie|erstattet} mir die doppelte Abbuchung von <amount> vom <date>.
        Mir wurden <amount> zu viel berechnet, ich hätte das Geld gerne zurück.
        Ich brauche eine korrigierte Rechnung mit unserer USt-IdNr.
        {F:Können Sie|Könnt ihr} bitte meine Zahlungsart von Kreditkarte auf Lastschrift umstellen?
        Warum ist mein Monatsbeitrag ohne Ankündigung auf <amount> gestiegen? Ich bitte um Erklärung.
        Bitte {F:schicken Sie|schickt} mir die Rechnung <invoice> noch einmal als PDF.
        Ich habe die Rechnung <invoice> aus Versehen zweimal bezahlt, bitte eine Zahlung zurücküberweisen.
        Die Mahngebühr von <amount> ist nicht gerechtfertigt, ich habe pünktlich überwiesen. Bitte streichen.
        Der versprochene Rabatt von 20 % fehlt auf der Rechnung, bitte den Betrag korrigieren.
        Wann bekomme ich endlich mein Geld für die Retoure zurück? Das ist jetzt <days> Tage her.
        Bitte {F:buchen Sie|bucht} nicht mehr von meiner alten Karte ab, sondern von der neuen.
        Auf meinem Kontoauszug steht eine Abbuchung über <amount>, die ich keiner Bestellung zuordnen kann. Wofür ist die?
        Kann ich die <amount> in Raten zahlen?
        Bitte {F:stellen Sie|stellt} die Rechnungen künftig auf meine Firma statt auf mich privat aus.
        Auf der Rechnung <invoice> ist die Mehrwertsteuer falsch berechnet, bitte neu ausstellen.
        Ich brauche alle Rechnungen vom letzten Jahr für die Steuererklärung.
        Im Checkout stand ein niedrigerer Preis als dann abgebucht wurde, ich will die Differenz zurück.
        Die Lastschrift ist geplatzt, jetzt kommt eine Gebühr dazu. Wie kann ich den offenen Betrag begleichen?
        Mir wurde der Jahrestarif berechnet, obwohl ich monatliche Zahlung gewählt habe. Bitte korrigieren und Differenz erstatten.
        Der Gutscheincode wurde bei der Zahlung nicht abgezogen, bitte {F:schreiben Sie|schreibt} mir <amount> gut.
        Bitte {F:bestätigen Sie|bestätigt} mir, dass der offene Betrag von <amount> beglichen ist.
        Was ist diese „Servicepauschale“ auf meiner Rechnung? Die habe ich nie vereinbart, bitte entfernen.
        Ich möchte eine Gutschrift für die Tage, an denen der Dienst nicht verfügbar war.
        Die Abbuchung vom <date> habe ich nicht autorisiert, bitte sofort zurückbuchen.
        Bitte die Adresse auf meinen Rechnungen auf meine neue Büroadresse ändern.
        Kann ich statt per Kreditkarte künftig per Überweisung zahlen?
        Ich hab nen Refund für die doppelte Zahlung beantragt, wann kommt das Geld?
        Die Erhöhung auf <amount> pro Monat ist nicht nachvollziehbar, bitte {F:erklären Sie|erklärt} mir die Berechnung.
    """),
    ("technical", "en"): _lines("""
        The app crashes every time I open the settings, can you fix this?
        My <product> keeps dropping the Wi-Fi connection, please help me get it working.
        I get error <error> whenever I try to upload a file. What's wrong?
        Since the update to version <ver> the app won't start at all. Please look into it.
        Your service has been down for hours, when will it be back?
        The <product> won't switch on anymore. What can I do?
        Streaming keeps buffering and stops after a few minutes, please check your servers.
        The sync between the app and the website is broken, my changes never show up.
        Push notifications stopped working on my phone, can you help?
        The <product> shows a blinking red light and does nothing. How do I fix it?
        Exporting to CSV produces an empty file, looks like a bug.
        The page freezes when I click "save", I've tried three browsers already.
        My <product> reboots itself every few minutes, please advise.
        The camera feed in the app has been black since <date>, please investigate.
        Search in the app returns nothing, even for items I know exist.
        The firmware update failed halfway and now the <product> is stuck in a boot loop.
        Video calls drop after exactly 60 seconds, every single time.
        The internet drops every evening between 7 and 10 pm, please check the line.
        Since version <ver> the app drains my battery within two hours. Is that a known issue?
        Bluetooth pairing with the <product> fails with error <error>.
        Is there an outage in my area? Nothing has worked since this morning.
        The desktop client says "connection timed out" on every start, please help me troubleshoot.
        Images don't load in the app anymore, I only see grey boxes.
        The <product> forgets all its settings after every restart, that can't be right.
        The checkout button doesn't respond on Android, please fix it.
        Audio and video are out of sync in the TV app, can you look into it?
        The printer driver won't install, the setup aborts with <error>.
        The status light on the <product> has been flickering since yesterday, what should I do?
    """),
    ("technical", "de"): _lines("""
        Die App stürzt jedes Mal ab, wenn ich die Einstellungen öffne. Bitte beheben.
        Mein <product> verliert ständig die WLAN-Verbindung, {F:können Sie|könnt ihr} mir helfen?
        Beim Hochladen kommt immer Fehler <error>, was ist da los?
        Seit dem Update auf Version <ver> startet die App gar nicht mehr.
        Der Dienst ist seit Stunden nicht erreichbar, wann läuft das wieder?
        Der <product> lässt sich nicht mehr einschalten. Was kann ich tun?
        Der Stream ruckelt und bricht nach ein paar Minuten ab, bitte die Server prüfen.
        Die Synchronisation zwischen App und Website funktioniert nicht, meine Änderungen kommen nie an.
        Ich bekomme keine Push-Benachrichtigungen mehr, was kann ich tun?
        Am <product> blinkt die LED rot und nichts geht mehr. Wie bekomme ich das wieder zum Laufen?
        Der CSV-Export erzeugt eine leere Datei, sieht nach einem Bug aus.
        Die Seite friert ein, sobald ich auf „Speichern“ klicke, in drei Browsern getestet.
        Der <product> startet alle paar Minuten von selbst neu.
        Das Kamerabild in der App ist seit dem <date> schwarz, bitte mal prüfen.
        Die Suche in der App findet gar nichts mehr, auch Sachen, die es sicher gibt.
        Nach dem Firmware-Update hängt der <product> in einer Boot-Schleife fest.
        Videoanrufe brechen immer nach genau 60 Sekunden ab.
        Das Internet fällt jeden Abend zwischen 19 und 22 Uhr aus, bitte die Leitung prüfen.
        Seit Version <ver> ist mein Akku nach zwei Stunden leer. Ist der Fehler bekannt?
        Das Bluetooth-Pairing mit dem <product> scheitert mit Fehler <error>.
        Gibt es eine Störung in meiner Gegend? Seit heute früh geht gar nichts.
        Der Desktop-Client meldet bei jedem Start „Zeitüberschreitung der Verbindung“.
        In der App laden keine Bilder mehr, nur graue Kästen.
        Der <product> vergisst nach jedem Neustart alle Einstellungen.
        Ton und Bild sind in der TV-App nicht synchron, {F:können Sie|könnt ihr} das fixen?
        Der Druckertreiber lässt sich nicht installieren, das Setup bricht mit <error> ab.
        Die Status-LED vom <product> flackert seit gestern, was soll ich tun?
        Der Checkout-Button reagiert unter Android nicht, bitte reparieren.
    """),
    ("account", "en"): _lines("""
        I forgot my password and the reset link never arrives, please help.
        I can't log in anymore, it says my credentials are wrong although they're correct.
        My profile was locked after too many attempts, please unlock it.
        I got a new phone and lost my 2FA codes. How do I get back in?
        Please change the e-mail address for my login to <newemail>.
        The password reset link says "expired" every time I click it.
        I never receive the verification SMS, so I can't sign in.
        Can you merge my two user profiles? I accidentally registered twice.
        Please change my username, the current one has a typo.
        How do I switch two-factor authentication from SMS to an authenticator app?
        My login was blocked "for security reasons", please restore my access.
        I no longer have access to my old e-mail address. How can I reset my password?
        I can't remember which e-mail address I signed up with, can you check via customer number <cust>?
        Please remove the old phone number from my sign-in settings and add the new one.
        The confirmation e-mail for my registration never came, please resend it.
        Someone changed my password and I can't get in anymore. Please help me regain access.
        Please reset my PIN for the customer portal.
        The security question I set up doesn't accept my answer anymore, please reset it.
        How do I turn off two-factor authentication? I keep locking myself out.
        Please unlock my customer login, I typed the wrong password a few times.
        I need to change the e-mail I sign in with, my old work address is being shut down.
        Please send me a new activation link, the old one doesn't work.
        Can you help me set a new password? I'm stuck in a loop on the reset page.
        I'm locked out of the customer portal, please give me access again.
        The 2FA code from my authenticator app is always rejected.
        I'd like to change the name on my user profile after getting married.
        My account is blocked, can you unblock it please?
    """),
    ("account", "de"): _lines("""
        Ich habe mein Passwort vergessen und der Reset-Link kommt nie an.
        Ich kann mich nicht mehr einloggen, angeblich stimmen meine Zugangsdaten nicht.
        Mein Kundenkonto wurde nach zu vielen Fehlversuchen gesperrt, bitte entsperren.
        Neues Handy, die 2FA-Codes sind weg. Wie komme ich wieder rein?
        Bitte {F:ändern Sie|ändert} die E-Mail-Adresse für meinen Login auf <newemail>.
        Der Link zum Zurücksetzen des Passworts ist jedes Mal „abgelaufen“.
        Die Bestätigungs-SMS kommt nicht, deshalb kann ich mich nicht anmelden.
        {F:Können Sie|Könnt ihr} meine zwei Benutzerprofile zusammenführen? Ich habe mich aus Versehen doppelt registriert.
        Bitte {F:ändern Sie|ändert} meinen Benutzernamen, da ist ein Tippfehler drin.
        Wie stelle ich die Zwei-Faktor-Authentifizierung von SMS auf eine Authenticator-App um?
        Mein Zugang wurde „aus Sicherheitsgründen“ gesperrt, bitte wieder freischalten.
        Auf meine alte E-Mail-Adresse habe ich keinen Zugriff mehr. Wie setze ich das Passwort zurück?
        Ich weiß nicht mehr, mit welcher E-Mail ich mich registriert habe. {F:Können Sie|Könnt ihr} das über Kundennummer <cust> nachsehen?
        Bitte die alte Handynummer aus meinen Anmeldeeinstellungen entfernen und die neue eintragen.
        Die Bestätigungsmail für die Registrierung ist nie angekommen, bitte nochmal schicken.
        Jemand hat mein Passwort geändert und ich komme nicht mehr rein. Bitte {F:helfen Sie|helft} mir, den Zugang zurückzubekommen.
        Bitte {F:setzen Sie|setzt} die PIN für das Kundenportal zurück.
        Meine Sicherheitsfrage wird nicht mehr akzeptiert, bitte zurücksetzen.
        Wie schalte ich die Zwei-Faktor-Anmeldung ab? Ich sperre mich dauernd aus.
        Bitte den Login wieder entsperren, ich habe mich ein paar Mal vertippt.
        Ich muss die Login-E-Mail ändern, weil meine alte Firmenadresse abgeschaltet wird.
        Bitte {F:schicken Sie|schickt} mir einen neuen Aktivierungslink, der alte geht nicht.
        Ich bin aus dem Kundenportal ausgesperrt, bitte den Zugang wiederherstellen.
        Der 2FA-Code aus meiner Authenticator-App wird immer abgelehnt.
        Nach meiner Heirat möchte ich den Namen in meinem Benutzerprofil ändern.
        Wie kann ich ein neues Passwort festlegen? Ich hänge in einer Schleife auf der Reset-Seite fest.
        Mein Account ist gesperrt, {F:können Sie|kannst du} den bitte freischalten?
    """),
    ("shipping", "en"): _lines("""
        My order <order> should have arrived <days> days ago. Where is it?
        The tracking hasn't moved since <date>, can you find out where my parcel is?
        The parcel arrived damaged, the box was completely crushed. Please send a replacement.
        I received the wrong item: I ordered a <product> and got something else. Please send the right one.
        Please change the delivery address for order <order> to my work address.
        The courier says the parcel was delivered, but nothing arrived here.
        Can you tell me when order <order> will be dispatched?
        Half of my order is missing, only one of two boxes came.
        Please hold the parcel at the depot, I'm away until <date>.
        The tracking number you sent me is unknown to the courier.
        Could the delivery go to a pickup point instead of my home?
        My parcel has been "in transit" for two weeks, please open an investigation with the courier.
        The driver left the package in the rain and everything is soaked. Please replace it.
        Do you deliver to Austria, and how long does it take?
        Please leave the delivery with my neighbour at number 12.
        The delivery date keeps getting pushed back. When will it actually come?
        I need the parcel by Friday, can you upgrade it to express delivery?
        Order <order> came back to you as undeliverable, please send it out again.
        The casing of the <product> was cracked when I unpacked it, please send a replacement.
        There's a typo in the street name of my order, please fix it before it goes out.
        I got somebody else's parcel with my order number on it. What should I do?
        The tracking says "delivery failed", but I was home all day. Please arrange a new delivery.
        Please send me the tracking number for order <order>.
        My order was split and the second package never arrived.
        The parcel is stuck at customs, what do I need to do?
        The box contained the wrong colour, please exchange it.
        Can you deliver on a Saturday? Nobody is home during the week.
    """),
    ("shipping", "de"): _lines("""
        Meine Bestellung <order> hätte vor <days> Tagen ankommen sollen. Wo bleibt sie?
        Die Sendungsverfolgung hat sich seit dem <date> nicht bewegt, wo ist mein Paket?
        Das Paket kam beschädigt an, der Karton war völlig zerdrückt. Bitte Ersatz schicken.
        Ich habe den falschen Artikel bekommen, bestellt war ein <product>. Bitte den richtigen nachliefern.
        Bitte {F:ändern Sie|ändert} die Lieferadresse für Bestellung <order> auf meine Arbeitsadresse.
        Laut Paketdienst wurde zugestellt, aber hier ist nichts angekommen.
        Wann wird Bestellung <order> verschickt?
        Die Hälfte meiner Bestellung fehlt, nur eins von zwei Paketen kam an.
        Bitte das Paket in der Filiale lagern, ich bin bis zum <date> verreist.
        Die Sendungsnummer, die ich bekommen habe, kennt der Paketdienst nicht.
        Kann die Lieferung an eine Abholstation statt nach Hause gehen?
        Mein Paket ist seit zwei Wochen „in Zustellung“, bitte einen Nachforschungsauftrag stellen.
        Der Fahrer hat das Paket in den Regen gestellt, alles ist durchnässt. Bitte Ersatz schicken.
        {F:Liefern Sie|Liefert ihr} auch nach Österreich und wie lange dauert das?
        Bitte die Lieferung beim Nachbarn in Hausnummer 12 abgeben.
        Der Liefertermin wird ständig verschoben. Wann kommt das Paket denn nun wirklich?
        Ich brauche das Paket bis Freitag, geht das noch per Expressversand?
        Bestellung <order> kam als unzustellbar zu {F:Ihnen|euch} zurück, bitte erneut versenden.
        Das Gehäuse vom <product> war beim Auspacken gesprungen, bitte Ersatz schicken.
        In der Lieferadresse ist ein Tippfehler im Straßennamen, bitte vor dem Versand korrigieren.
        Ich habe ein fremdes Paket mit meiner Bestellnummer bekommen. Was soll ich tun?
        Laut Tracking „Zustellung fehlgeschlagen“, ich war aber den ganzen Tag zu Hause. Bitte neu zustellen.
        Bitte {F:schicken Sie|schickt} mir die Sendungsnummer für Bestellung <order>.
        Die Bestellung wurde aufgeteilt und das zweite Paket kam nie an.
        Das Paket hängt beim Zoll fest, was muss ich machen?
        Im Karton war die falsche Farbe, bitte umtauschen.
        {F:Können Sie|Könnt ihr} auch samstags liefern? Unter der Woche ist niemand da.
        Wo bleibt mein Paket?? Das Tracking sagt seit Tagen nix.
    """),
    ("cancellation", "en"): _lines("""
        I want to cancel my subscription at the next possible date.
        Please terminate my contract <contract> and confirm the end date in writing.
        What is my notice period? I'd like to leave as soon as possible.
        I'm withdrawing from my purchase of <date> within the 14-day period.
        Please don't renew my plan automatically, I want it to end after this term.
        I hereby give notice on my <plan>, effective at the earliest possible date.
        Please end my membership, I'm moving abroad.
        Can I get out of the contract early? I'm moving to an area you don't serve.
        Please confirm that my subscription ends on <date> and no further payments will be taken.
        I'd like to downgrade to the free tier for now and quit the paid plan completely when the term ends.
        Stop my subscription immediately, I don't want it anymore.
        I exercise my right of withdrawal for order <order>.
        I'd like to end the free trial before it turns into a paid plan.
        Please end the additional SIM card on my contract at the end of the month.
        I want out of this contract. What do I need to send you?
        I'm using my special right of termination because of the price increase.
        How do I cancel online? I can't find the button anywhere.
        I want to quit the <plan> at the end of the minimum term.
        Please confirm receipt of the notice of termination I sent on <date>.
        My father passed away, I need to end his contract.
        I won't be extending, please just let the contract expire.
        I'd like to call off the order I placed this morning before it's processed.
        Please close my subscription and don't send any more boxes.
        Terminate everything please, I'm done with your service.
        What is the earliest date I can get out of my contract?
        Please end my <plan> with effect from the end of next month.
        I'm sending you my notice for contract <contract>, please confirm it.
    """),
    ("cancellation", "de"): _lines("""
        Hiermit kündige ich meinen Vertrag <contract> zum nächstmöglichen Zeitpunkt.
        Ich möchte mein Abo kündigen, bitte {F:bestätigen Sie|bestätigt} mir das Enddatum schriftlich.
        Wie lange ist meine Kündigungsfrist? Ich will so schnell wie möglich raus.
        Ich widerrufe meinen Kauf vom <date> innerhalb der 14-tägigen Widerrufsfrist.
        Bitte {F:verlängern Sie|verlängert} meinen Tarif nicht automatisch, er soll zum Laufzeitende auslaufen.
        Hiermit widerrufe ich den Vertrag, den ich am <date> online abgeschlossen habe.
        Bitte {F:beenden Sie|beendet} meine Mitgliedschaft, ich ziehe ins Ausland.
        Kann ich vorzeitig aus dem Vertrag raus? Ich ziehe in ein Gebiet, das {F:Sie nicht versorgen|ihr nicht versorgt}.
        Bitte {F:bestätigen Sie|bestätigt}, dass mein Abo am <date> endet und nichts mehr abgebucht wird.
        Ich nutze mein Sonderkündigungsrecht wegen der Preiserhöhung.
        Ich möchte die Probephase beenden, bevor sie in ein kostenpflichtiges Abo übergeht.
        Bitte die Zusatzkarte zu meinem Mobilfunkvertrag zum Monatsende beenden.
        Ich will aus dem Vertrag raus. Was muss ich {F:Ihnen|euch} dafür schicken?
        Wie kündige ich online? Ich finde den Kündigungsbutton nirgends.
        Ich möchte den <plan> zum Ende der Mindestlaufzeit beenden.
        Bitte {F:bestätigen Sie|bestätigt} den Eingang meiner Kündigung vom <date>.
        Mein Vater ist verstorben, ich möchte seinen Vertrag beenden.
        Ich verlängere nicht, der Vertrag soll einfach auslaufen.
        Ich möchte die Bestellung von heute früh stornieren, bevor sie bearbeitet wird.
        Bitte {F:beenden Sie|beendet} mein Abo und {F:schicken Sie|schickt} keine Boxen mehr.
        Ich bin durch mit {F:Ihrem|eurem} Service, bitte alles kündigen.
        Zu wann komme ich frühestens aus meinem Vertrag raus?
        Erstmal auf den Basistarif runterstufen und zum Laufzeitende dann ganz kündigen, bitte.
        Ich mache von meinem Widerrufsrecht Gebrauch, Bestellung <order>.
        Ich will den <plan> sofort beenden, ich brauche das nicht mehr.
        Bitte den Vertrag <contract> fristgerecht beenden und mir das schriftlich bestätigen.
        Wie kann ich mein Abo beenden? Im Kundenportal finde ich dazu nichts.
    """),
    ("privacy", "en"): _lines("""
        Under Art. 15 GDPR I request a copy of all personal data you store about me.
        Please erase all my personal data, including my order history, under Art. 17 GDPR.
        I withdraw my consent to marketing e-mails and want to be removed from all your mailing lists.
        Why does your newsletter contain tracking pixels? Please stop tracking whether I open it.
        I read about a data breach. Was my data affected? Please tell me exactly what was leaked.
        Who have you shared my personal data with? I want the list of recipients.
        Please rectify my stored date of birth under Art. 16 GDPR, it's wrong in your records.
        I never agreed to my data being passed on to third parties for advertising. Stop this immediately.
        I object to the processing of my data for profiling.
        Please send me my data in a machine-readable format (data portability).
        How long do you keep my data after I stop being a customer, and on what legal basis?
        I get spam at an address I only ever gave to you. Did you pass my data on?
        Please remove my phone number from your records, I never consented to calls.
        I'd like the contact details of your data protection officer.
        Please confirm in writing that my data has been erased.
        Stop using my purchase history for personalised ads, I withdraw my consent.
        I received an e-mail containing another customer's address and order. That's a data leak, please investigate and tell me what happened to my data.
        I want to know which location data your app collects about me.
        Please restrict the processing of my data under Art. 18 GDPR while my complaint is reviewed.
        Please unsubscribe me from every newsletter and delete the tracking profile linked to my e-mail.
        Is my data stored on servers outside the EU? I'd like information on that.
        Please erase the security camera recordings of mine that are stored in your cloud.
        You keep sending me advertising although I revoked my consent on <date>. Please comply with the GDPR.
        I'm making a GDPR data access request for customer number <cust>.
        Please delete the copy of my ID that you required during registration.
        Why do you store my IP addresses? I object to that.
        I no longer want personalised advertising and withdraw my consent to tracking.
    """),
    ("privacy", "de"): _lines("""
        Gemäß Art. 15 DSGVO bitte ich um Auskunft über alle zu meiner Person gespeicherten Daten.
        Bitte {F:löschen Sie|löscht} alle meine personenbezogenen Daten inklusive Bestellhistorie (Art. 17 DSGVO).
        Ich widerrufe meine Einwilligung zu Werbe-E-Mails und will aus allen Verteilern raus.
        Warum enthält {F:Ihr|euer} Newsletter Tracking-Pixel? Bitte das Tracking meiner Öffnungen einstellen.
        Ich habe von einem Datenleck gelesen. Sind meine Daten betroffen? Bitte genau mitteilen, was abgeflossen ist.
        An wen {F:haben Sie|habt ihr} meine Daten weitergegeben? Ich möchte eine Liste der Empfänger.
        Bitte {F:berichtigen Sie|berichtigt} mein gespeichertes Geburtsdatum gemäß Art. 16 DSGVO.
        Ich habe nie zugestimmt, dass meine Daten für Werbung an Dritte gehen. Bitte sofort unterlassen.
        Ich widerspreche der Verarbeitung meiner Daten zu Profiling-Zwecken.
        Bitte {F:stellen Sie|stellt} mir meine Daten in einem maschinenlesbaren Format bereit (Datenübertragbarkeit).
        Wie lange {F:speichern Sie|speichert ihr} meine Daten, nachdem ich kein Kunde mehr bin, und auf welcher Rechtsgrundlage?
        Ich bekomme Spam an eine Adresse, die ich nur bei {F:Ihnen|euch} genutzt habe. Wurden meine Daten weitergegeben?
        Bitte {F:löschen Sie|löscht} meine Telefonnummer, Anrufen habe ich nie zugestimmt.
        Ich hätte gerne die Kontaktdaten {F:Ihres|eures} Datenschutzbeauftragten.
        Bitte {F:bestätigen Sie|bestätigt} mir schriftlich, dass meine Daten gelöscht wurden.
        Meine Kaufhistorie soll nicht mehr für personalisierte Werbung genutzt werden, ich widerrufe die Einwilligung.
        Ich habe eine Mail mit Adresse und Bestellung eines anderen Kunden bekommen. Das ist ein Datenschutzvorfall, bitte aufklären, was mit meinen Daten passiert ist.
        Welche Standortdaten sammelt {F:Ihre|eure} App über mich? Das will ich wissen.
        Bitte {F:schränken Sie|schränkt} die Verarbeitung meiner Daten nach Art. 18 DSGVO ein, bis meine Beschwerde geprüft ist.
        Bitte aus allen Newslettern austragen und das mit meiner E-Mail verknüpfte Tracking-Profil löschen.
        Werden meine Daten auf Servern außerhalb der EU gespeichert? Ich bitte um Auskunft.
        Bitte {F:löschen Sie|löscht} die Aufnahmen meiner Überwachungskamera, die in {F:Ihrer|eurer} Cloud liegen.
        Trotz Widerruf meiner Einwilligung am <date> bekomme ich weiter Werbung. Bitte {F:halten Sie sich|haltet euch} an die DSGVO.
        Ich stelle hiermit einen DSGVO-Auskunftsantrag für Kundennummer <cust>.
        Bitte {F:löschen Sie|löscht} die Ausweiskopie, die ich bei der Registrierung hochladen musste.
        Warum {F:speichern Sie|speichert ihr} meine IP-Adressen? Ich widerspreche dem.
        Ich möchte keine personalisierte Werbung mehr und widerrufe mein Einverständnis zum Tracking.
    """),
}

# Request that names another category as its cause ("cause :: text").
COMBO: dict[tuple[str, str], tuple[str, ...]] = {
    ("billing", "en"): _lines("""
        technical :: Your service was down for <days> days last month, so I expect a partial refund of the monthly fee.
        shipping :: The parcel arrived <days> days late although I paid <amount> for express delivery, so please refund the express fee.
        cancellation :: I terminated my contract properly on <date>, yet you charged me <amount> again this month. Please pay it back.
        account :: While my login was locked I couldn't check anything, and now <amount> has been taken twice. Please refund one of the payments.
        privacy :: After the data breach you told us about I got a new credit card, so please charge the new card from now on.
        privacy :: I got the GDPR copy of my data, thanks. What's still open is the refund of the <amount> I paid twice, please transfer it.
    """),
    ("billing", "de"): _lines("""
        technical :: Der Dienst war letzten Monat <days> Tage lang gestört, dafür erwarte ich eine anteilige Erstattung der Grundgebühr.
        shipping :: Das Paket kam <days> Tage zu spät, obwohl ich <amount> für Expressversand bezahlt habe. Bitte die Expressgebühr erstatten.
        cancellation :: Ich habe am <date> fristgerecht gekündigt, trotzdem wurden diesen Monat wieder <amount> abgebucht. Bitte zurückzahlen.
        account :: Weil mein Login gesperrt war, konnte ich nichts prüfen, und jetzt wurden <amount> doppelt abgebucht. Bitte eine Zahlung erstatten.
        privacy :: Nach dem Datenleck, über das {F:Sie|ihr} informiert {F:haben|habt}, habe ich eine neue Kreditkarte. Bitte ab sofort die neue Karte belasten.
        privacy :: Die DSGVO-Auskunft habe ich bekommen, danke. Offen ist aber noch die Erstattung der doppelt gezahlten <amount>, bitte überweisen.
    """),
    ("technical", "en"): _lines("""
        account :: Since the password reset, my invoice page shows an error 500. Please fix the page.
        billing :: I pay <amount> a month, so the stream shouldn't stop every ten minutes. Please get it working properly again.
        cancellation :: I don't want to cancel, but the router has to work. Please send a technician.
        shipping :: The <product> arrived on time and undamaged, but the app can't find it during setup. What am I doing wrong?
        privacy :: Since I declined the tracking cookies your website doesn't load the product pages at all. Please fix that bug.
        account :: Logging in works, but right after login the app crashes. Please fix it.
    """),
    ("technical", "de"): _lines("""
        account :: Seit dem Passwort-Reset zeigt meine Rechnungsseite Fehler 500. Bitte die Seite reparieren.
        billing :: Ich zahle <amount> im Monat, da sollte der Stream nicht alle zehn Minuten abbrechen. Bitte {F:sorgen Sie|sorgt} dafür, dass er wieder läuft.
        cancellation :: Kündigen will ich nicht, aber der Router muss laufen. Bitte einen Techniker schicken.
        shipping :: Der <product> kam pünktlich und heil an, aber die App findet ihn bei der Einrichtung nicht. Was mache ich falsch?
        privacy :: Seit ich die Tracking-Cookies abgelehnt habe, lädt {F:Ihre|eure} Website die Produktseiten gar nicht mehr. Bitte den Bug beheben.
        account :: Der Login klappt, aber direkt danach stürzt die App ab. Bitte beheben.
    """),
    ("account", "en"): _lines("""
        billing :: I want to download my invoices, but my password is rejected. Please reset my access.
        privacy :: I don't want any data deleted, I just need the e-mail address for my login changed to <newemail>.
        technical :: The app works fine, but my 2FA code is no longer accepted. Please reset two-factor so I can set it up again.
        cancellation :: I'm not cancelling anything, I just need the password reset link sent to my new address.
        shipping :: My parcel arrived fine, but since then my login doesn't work anymore. Please reset my password.
        billing :: The payment went through fine, but my customer login is still locked. Please unlock it.
    """),
    ("account", "de"): _lines("""
        billing :: Ich will meine Rechnungen herunterladen, aber mein Passwort wird abgelehnt. Bitte den Zugang zurücksetzen.
        privacy :: Löschen soll niemand etwas, ich will nur die E-Mail-Adresse für meinen Login auf <newemail> ändern.
        technical :: Die App läuft, aber mein 2FA-Code wird nicht mehr akzeptiert. Bitte die Zwei-Faktor-Anmeldung zurücksetzen, damit ich sie neu einrichten kann.
        cancellation :: Ich kündige nichts, ich brauche nur den Link zum Passwort-Zurücksetzen an meine neue Adresse.
        shipping :: Mein Paket kam gut an, aber seitdem funktioniert mein Login nicht mehr. Bitte Passwort zurücksetzen.
        billing :: Die Zahlung ist durch, aber mein Kundenlogin ist immer noch gesperrt. Bitte entsperren.
    """),
    ("shipping", "en"): _lines("""
        billing :: I've paid and the money has left my bank account, but the parcel still hasn't arrived. Where is it?
        technical :: Your app crashes when I open the tracking page, so please just tell me: where is parcel <order>?
        cancellation :: I'm not withdrawing from the purchase, I just want the missing second box delivered.
        account :: I updated the address in my profile yesterday, but order <order> is still going to the old one. Please redirect the parcel.
        privacy :: You may keep my data for the order, no problem, but the parcel has been stuck for a week. Please find out where it is.
        billing :: A refund is not what I want. Please send a replacement for the item that arrived broken.
    """),
    ("shipping", "de"): _lines("""
        billing :: Bezahlt ist längst, das Geld ist vom Konto weg, aber das Paket ist immer noch nicht da. Wo ist es?
        technical :: {F:Ihre|Eure} App stürzt beim Öffnen der Sendungsverfolgung ab, also bitte direkt: Wo ist Paket <order>?
        cancellation :: Ich will nicht widerrufen, ich will nur, dass der fehlende zweite Karton geliefert wird.
        account :: Ich habe gestern die Adresse in meinem Profil geändert, aber Bestellung <order> geht noch an die alte. Bitte das Paket umleiten.
        privacy :: Meine Daten für die Bestellung dürfen {F:Sie|ihr} gern speichern, aber das Paket hängt seit einer Woche fest. Bitte herausfinden, wo es ist.
        billing :: Eine Erstattung will ich nicht. Bitte {F:schicken Sie|schickt} Ersatz für den Artikel, der kaputt ankam.
    """),
    ("cancellation", "en"): _lines("""
        technical :: The app has crashed every day for a month and nobody fixes it, so I want to end my subscription.
        billing :: After the third price increase this year I'm giving notice on my contract.
        shipping :: Every box in the last three months arrived late or damaged, so please end my subscription.
        account :: I've been locked out of my profile twice this month and I've had enough. Please terminate my contract.
        privacy :: I'm not asking you to delete my data, I simply want my contract to end at the end of the term.
        technical :: Your internet has dropped out every evening since <date>, so I'm using my special right of termination.
    """),
    ("cancellation", "de"): _lines("""
        technical :: Die App stürzt seit einem Monat täglich ab und niemand behebt das, deshalb will ich kündigen.
        billing :: Nach der dritten Preiserhöhung in diesem Jahr kündige ich meinen Vertrag.
        shipping :: Jede Box der letzten drei Monate kam zu spät oder beschädigt an, bitte {F:beenden Sie|beendet} mein Abo.
        account :: Ich war diesen Monat zweimal aus meinem Profil ausgesperrt und habe genug. Bitte den Vertrag kündigen.
        privacy :: Meine Daten müssen {F:Sie|ihr} nicht löschen, ich will nur den Vertrag zum Laufzeitende beenden.
        technical :: Das Internet fällt seit dem <date> jeden Abend aus, ich mache von meinem Sonderkündigungsrecht Gebrauch.
    """),
    ("privacy", "en"): _lines("""
        account :: Someone logged into my profile from abroad last night. I want to know which of my personal data they could see.
        billing :: Invoice <invoice> shows my full date of birth. Why do you store that? Please delete it from your records.
        cancellation :: I ended my contract last year, yet you still send me newsletters. Please erase all my data now.
        shipping :: The courier had my mobile number although I never gave it for delivery. Who else did you share my data with?
        technical :: The app's crash reports seem to upload my contacts. Please tell me exactly what data the app sends you.
        billing :: Forget the refund, I want all my personal data deleted under the GDPR.
    """),
    ("privacy", "de"): _lines("""
        account :: Heute Nacht hat sich jemand aus dem Ausland in mein Profil eingeloggt. Ich will wissen, welche meiner Daten er sehen konnte.
        billing :: Auf Rechnung <invoice> steht mein vollständiges Geburtsdatum. Warum {F:speichern Sie|speichert ihr} das? Bitte löschen.
        cancellation :: Ich habe letztes Jahr gekündigt und bekomme trotzdem noch Newsletter. Bitte jetzt alle meine Daten löschen.
        shipping :: Der Paketdienst hatte meine Handynummer, obwohl ich sie nie für die Lieferung angegeben habe. An wen {F:haben Sie|habt ihr} meine Daten noch weitergegeben?
        technical :: Die Absturzberichte der App scheinen meine Kontakte hochzuladen. Bitte genau mitteilen, welche Daten die App an {F:Sie|euch} sendet.
        billing :: Die Erstattung ist mir egal, ich will, dass alle meine personenbezogenen Daten nach DSGVO gelöscht werden.
    """),
}

# Side remarks about a category that are explicitly NOT the request (distractors).
MENTION: dict[tuple[str, str], tuple[str, ...]] = {
    ("billing", "en"): _lines("""
        My invoices are all paid, so this isn't about money.
        I was charged twice last month, but my bank already sorted that out.
        The refund for my last return came through fine, thanks for that.
        I pay by direct debit and the payments always go through.
        Your prices are fine, no complaints there.
        Invoice <invoice> is correct, so don't worry about that part.
        Yes, the price went up, but that's not what bothers me.
        I'm not disputing any charge.
        I don't need a refund or a credit note.
        The payment reminder from last week is settled, I've transferred the money.
    """),
    ("billing", "de"): _lines("""
        Die Rechnungen sind alle bezahlt, ums Geld geht es also nicht.
        Letzten Monat wurde zwar doppelt abgebucht, aber das hat meine Bank schon geklärt.
        Die Erstattung für meine letzte Retoure kam problemlos an, danke dafür.
        Ich zahle per Lastschrift und das klappt immer.
        Mit den Preisen habe ich kein Problem.
        Die Rechnung <invoice> stimmt, da ist alles in Ordnung.
        Ja, der Preis ist gestiegen, aber darum geht es mir nicht.
        Ich will keine Abbuchung reklamieren.
        Eine Gutschrift oder Erstattung brauche ich nicht.
        Die Mahnung von neulich hat sich erledigt, das Geld ist überwiesen.
    """),
    ("technical", "en"): _lines("""
        The app itself works fine, no errors or crashes.
        The <product> runs perfectly, by the way.
        There was an outage last week, but that's resolved and not why I'm writing.
        I know the app crashed for everyone yesterday, that's not my issue.
        I'm not reporting a bug.
        Technically everything works, the device is great.
        I had error <error> once, but it went away after a restart.
        Since the update the app is a bit slow, but I can live with that.
        Your internet connection has been stable for me.
        Your hotline helped me fix a Wi-Fi problem last month, thanks again.
    """),
    ("technical", "de"): _lines("""
        Die App selbst läuft einwandfrei, keine Abstürze oder Fehlermeldungen.
        Der <product> funktioniert übrigens super.
        Letzte Woche gab es eine Störung, die ist aber behoben und nicht der Grund für meine Nachricht.
        Dass die App gestern bei allen abgestürzt ist, weiß ich, darum geht's nicht.
        Ich will keinen Bug melden.
        Technisch ist alles in Ordnung, das Gerät ist top.
        Fehler <error> hatte ich einmal, der war nach einem Neustart weg.
        Seit dem Update ist die App etwas langsam, aber damit kann ich leben.
        Das Internet läuft bei mir stabil.
        Letzten Monat hat mir die Hotline bei einem WLAN-Problem geholfen, danke nochmal.
    """),
    ("account", "en"): _lines("""
        I can log in without any problems.
        I reset my password last week and that worked fine.
        My login and 2FA work, that's not the issue.
        My account was locked briefly last month, but that's sorted.
        I already changed my e-mail address in the profile myself.
        I don't need a new password.
        Two-factor authentication is set up and works.
        Logging in to the customer portal works on my phone and my laptop.
    """),
    ("account", "de"): _lines("""
        Einloggen klappt ohne Probleme.
        Mein Passwort habe ich letzte Woche zurückgesetzt, das hat funktioniert.
        Login und 2FA funktionieren, daran liegt es nicht.
        Mein Konto war letzten Monat kurz gesperrt, aber das ist erledigt.
        Die E-Mail-Adresse im Profil habe ich schon selbst geändert.
        Ein neues Passwort brauche ich nicht.
        Die Zwei-Faktor-Authentifizierung ist eingerichtet und läuft.
        Der Login ins Kundenportal geht am Handy und am Laptop.
    """),
    ("shipping", "en"): _lines("""
        The parcel arrived on time and in perfect condition.
        Delivery was quick, thanks.
        I got the tracking number and the package came yesterday.
        The courier was very friendly.
        One delivery was late in spring, but that's long forgotten.
        Order <order> arrived complete.
        I don't have any problem with the delivery.
        The box was a bit dented, but everything inside was fine.
    """),
    ("shipping", "de"): _lines("""
        Das Paket kam pünktlich und unbeschädigt an.
        Die Lieferung ging schnell, danke.
        Die Sendungsnummer habe ich bekommen und das Paket ist gestern angekommen.
        Der Paketbote war sehr freundlich.
        Im Frühjahr kam mal eine Lieferung zu spät, aber das ist längst vergessen.
        Die Bestellung <order> ist vollständig angekommen.
        Mit dem Versand habe ich kein Problem.
        Der Karton war etwas eingedrückt, der Inhalt aber heil.
    """),
    ("cancellation", "en"): _lines("""
        I'm not planning to cancel, I'm happy with the service.
        I thought about cancelling my contract, but I'd rather stay.
        I'm staying with you, no worries.
        My notice period isn't relevant here, I'm not leaving.
        I know I could withdraw from the purchase, but I want to keep it.
        I extended my subscription last month on purpose.
        Terminating is not an option for me, I need this service.
        A friend told me to just cancel my subscription, but I don't want to.
    """),
    ("cancellation", "de"): _lines("""
        Kündigen will ich nicht, ich bin eigentlich zufrieden.
        Ich habe kurz überlegt zu kündigen, bleibe aber lieber.
        Keine Sorge, ich bleibe Kunde.
        Die Kündigungsfrist spielt hier keine Rolle, ich will nicht weg.
        Ich weiß, dass ich widerrufen könnte, aber ich will das Gerät behalten.
        Mein Abo habe ich letzten Monat extra verlängert.
        Eine Kündigung kommt für mich nicht infrage, ich brauche den Dienst.
        Ein Freund meinte, ich soll einfach das Abo kündigen, aber das will ich nicht.
    """),
    ("privacy", "en"): _lines("""
        I have no concerns about data protection.
        I agreed to your privacy policy, that's fine.
        I'm subscribed to the newsletter and actually like it.
        I know you comply with the GDPR, so this isn't a data protection complaint.
        My data access request last year was answered quickly, thanks.
        I'm fine with you storing my data for the contract.
        You can keep sending me the newsletter.
        I'm not asking for a copy of my data.
    """),
    ("privacy", "de"): _lines("""
        Datenschutzbedenken habe ich keine.
        Der Datenschutzerklärung habe ich zugestimmt, das passt.
        Den Newsletter habe ich abonniert und lese ihn gern.
        Ich weiß, dass {F:Sie die DSGVO einhalten|ihr die DSGVO einhaltet}, das ist also keine Datenschutzbeschwerde.
        Meine DSGVO-Auskunft letztes Jahr kam schnell, danke.
        Dass {F:Sie meine Daten für den Vertrag speichern|ihr meine Daten für den Vertrag speichert}, ist für mich in Ordnung.
        Den Newsletter {F:dürfen Sie|dürft ihr} gern weiter schicken.
        Eine Kopie meiner Daten brauche ich nicht.
    """),
}
BRIDGE = {
    "en": _lines("""
        What I actually need is this:
        My real issue is a different one.
        But that's not why I'm writing.
        Anyway, here's my actual request:
        The actual problem:
    """),
    "de": _lines("""
        Mein eigentliches Anliegen:
        Darum schreibe ich aber nicht.
        Worum es wirklich geht:
        Eigentlich geht es um etwas anderes:
        Jetzt zum eigentlichen Punkt:
    """),
}
AFTER_PREFIX = {"en": ("", "Btw: ", "Just so you know: "), "de": ("", "Übrigens: ", "Nur zur Info: ", "Btw: ")}

TERSE: dict[tuple[str, str], tuple[str, ...]] = {
    ("billing", "en"): _lines("""
        double charged, refund {pls|please}
        {Wrong|Incorrect} amount on my invoice
        need a copy of invoice <invoice>
        where is my refund??
        charged twice for {one|the same} order
        pls change payment to direct debit
        why was I charged {again|twice}?
        {unauthorised|unknown} charge on my card
        discount missing on the invoice
        money for my return still not received
        need invoice with our VAT number
        overcharged {this month|again}, fix it
    """),
    ("billing", "de"): _lines("""
        doppelt abgebucht, bitte {erstatten|zurückbuchen}
        Rechnung {falsch|stimmt nicht}, bitte korrigieren
        wo bleibt meine Erstattung??
        brauche Rechnung <invoice> nochmal
        Zahlungsart ändern {bitte|pls}
        Abbuchung nicht autorisiert, {bitte zurückbuchen|Geld zurück}!!
        Rabatt fehlt auf der Rechnung
        Geld für die Retoure fehlt noch
        Mahngebühr ist unberechtigt, bitte streichen
        zu viel abgebucht, {Geld zurück bitte|bitte Erstattung}
        wann kommt der Refund für die Doppelzahlung?
        Warum {schon wieder|wieder} abgebucht?
    """),
    ("technical", "en"): _lines("""
        app keeps crashing {!!|, fix pls|}
        router {offline|down} again
        error <error> on upload
        {Internet|Wifi} down since {this morning|yesterday}
        update broke the app
        device won't turn on {anymore|}
        stream keeps buffering{!!|, fix pls}
        no push notifications {anymore|since update}
        screen {flickers|stays black} after update
        bluetooth pairing {fails|not working}
        app freezes when I save
        sync not working {since Monday|again}
    """),
    ("technical", "de"): _lines("""
        App stürzt {ständig|dauernd} ab
        Router {schon wieder|wieder} offline
        Fehler <error> beim Hochladen
        Internet {weg|tot} seit heute früh
        nach dem Update geht nix mehr
        Gerät geht nicht mehr an
        Stream ruckelt {ständig|die ganze Zeit}
        keine Push-Nachrichten mehr {seit Update|}
        Display {flackert|bleibt schwarz} nach Update
        Bluetooth-Kopplung klappt nicht
        App friert beim Speichern ein
        Sync geht {nicht|schon wieder nicht}
    """),
    ("account", "en"): _lines("""
        forgot my password, help
        can't log in {anymore|since yesterday}
        {locked out|login blocked}, please unlock
        lost 2FA codes, new phone
        reset link expired again
        change my login email please
        verification SMS never arrives
        typo in username, please change
        never got the activation link
        security question not accepted {anymore|}
        help, can't sign in
    """),
    ("account", "de"): _lines("""
        Passwort vergessen, {hilfe|bitte helfen}
        Login geht nicht {mehr|seit gestern}
        Konto gesperrt, bitte entsperren
        2FA weg, neues Handy, {hilfe|was tun}
        Reset-Link {abgelaufen|geht nicht}
        Login-Mail ändern bitte
        Bestätigungs-SMS kommt nicht
        komme nicht mehr {rein|ins Kundenportal}
        Aktivierungslink nie bekommen
        Account gesperrt?? warum
        Benutzername ändern bitte, Tippfehler
    """),
    ("shipping", "en"): _lines("""
        where is my {parcel|package}??
        order <order> still not here
        tracking not updating {since Monday|for days}
        package arrived damaged
        wrong item {delivered|received}
        change delivery address please
        parcel {marked delivered|says delivered} but missing
        second box never arrived
        when will my order ship?
        need tracking number pls
        delivery late again
    """),
    ("shipping", "de"): _lines("""
        wo bleibt mein Paket??
        Bestellung <order> immer noch nicht da
        Tracking bewegt sich nicht
        Paket {beschädigt|kaputt} angekommen
        falscher Artikel geliefert
        Lieferadresse ändern bitte
        angeblich zugestellt, {nix da|aber nichts da}
        zweites Paket fehlt {noch|immer noch}
        wann wird meine Bestellung versendet?
        Sendungsnummer bitte
        Lieferung schon wieder {verspätet|zu spät}
    """),
    ("cancellation", "en"): _lines("""
        please cancel my subscription
        I want to {quit|end my contract}
        terminate contract <contract> please
        how do I cancel?
        withdrawing from my purchase {|of <date>}
        stop auto-renewal {please|now}
        end my membership {asap|please}
        what's my notice period?
        cancel {the trial|the free trial} before it's paid
        I'm out, {cancel|end} everything
    """),
    ("cancellation", "de"): _lines("""
        Abo kündigen {bitte|pls}
        Ich will kündigen{!|, sofort}
        Vertrag <contract> kündigen bitte
        Wie kann ich kündigen?
        Widerruf {meiner Bestellung|für Bestellung <order>}
        Keine automatische Verlängerung {bitte|mehr}
        Mitgliedschaft beenden {asap|bitte}
        wie lang ist die Kündigungsfrist?
        Probeabo {beenden|kündigen} vor Ablauf
        Kündigung zum nächstmöglichen Termin
    """),
    ("privacy", "en"): _lines("""
        GDPR access request{ please|, Art. 15}
        delete all my {data|personal data}
        withdraw consent for marketing {emails|}
        stop tracking my newsletter opens
        was my data {leaked|in the breach}?
        who got my data?
        remove my phone number from your records
        need contact of your data protection officer
        no more personalised ads {please|!!}
        confirm my data was erased
    """),
    ("privacy", "de"): _lines("""
        DSGVO-Auskunft {bitte|nach Art. 15}
        alle meine Daten löschen {bitte|!!}
        Einwilligung {Werbung|für Werbung} widerrufen
        kein Newsletter-Tracking mehr {bitte|}
        sind meine Daten {betroffen|im Leak}?
        an wen gingen meine Daten?
        Telefonnummer aus {Ihren|euren} Daten löschen
        Kontakt zum Datenschutzbeauftragten bitte
        keine personalisierte Werbung mehr
        Löschung meiner Daten bitte bestätigen
    """),
}

CONTEXT: dict[tuple[str, str], tuple[str, ...]] = {
    ("billing", "en"): _lines("""
        I checked my bank statement this morning and noticed something odd.
        My accountant spotted it during the monthly close.
        The amount doesn't match what I saw when I ordered.
        I'm on a tight budget at the moment, so every euro counts.
        I've always paid on time by direct debit.
        I'm self-employed and need proper paperwork for every expense.
        The payment reminder came as a complete surprise.
        I compared it with the last three invoices and this one is clearly different.
        My partner and I go through every bank statement together.
        I've paid the same amount for two years without any problems.
        It's not a huge sum, but it's the principle that matters.
        I only noticed because my banking app sends a message for every debit.
        My bank recently replaced my card because the old one expired.
    """),
    ("billing", "de"): _lines("""
        Ich habe heute früh meinen Kontoauszug angeschaut und mich gewundert.
        Meinem Steuerberater ist das beim Monatsabschluss aufgefallen.
        Der Betrag passt nicht zu dem, was bei der Bestellung angezeigt wurde.
        Ich muss gerade jeden Euro umdrehen.
        Ich habe immer pünktlich per Lastschrift bezahlt.
        Ich bin selbstständig und brauche für jede Ausgabe saubere Belege.
        Die Zahlungserinnerung kam für mich völlig überraschend.
        Ich habe es mit den letzten drei Rechnungen verglichen, diese weicht eindeutig ab.
        Mein Partner und ich gehen jeden Monat gemeinsam die Kontoauszüge durch.
        Ich zahle seit zwei Jahren denselben Betrag, ohne dass es je Probleme gab.
        Es ist keine riesige Summe, aber es geht ums Prinzip.
        Aufgefallen ist mir das nur, weil meine Banking-App bei jeder Abbuchung eine Nachricht schickt.
        Meine Karte wurde von der Bank kürzlich ausgetauscht, weil sie abgelaufen war.
    """),
    ("technical", "en"): _lines("""
        I've already restarted everything twice and reinstalled the app.
        I'm on the latest version on both Android and iOS.
        It worked fine until last week.
        My kids use it every evening, so this is really annoying.
        I tried another cable and another socket, no change.
        Your status page says everything is fine.
        I work from home and depend on this working.
        The problem started right after the automatic update on <date>.
        It happens on my phone and on my tablet, so it's not just one device.
        I followed every step in your troubleshooting guide.
        My neighbour has the same setup and no problems at all.
        Sometimes it works for ten minutes and then it fails again.
        I've attached a screenshot of the error message.
    """),
    ("technical", "de"): _lines("""
        Ich habe schon zweimal alles neu gestartet und die App neu installiert.
        Ich habe die neueste Version, auf Android und auf dem iPhone.
        Bis letzte Woche lief alles problemlos.
        Meine Kinder nutzen das jeden Abend, das nervt also gewaltig.
        Anderes Kabel und andere Steckdose habe ich schon probiert, keine Änderung.
        Auf {F:Ihrer|eurer} Statusseite steht, dass alles läuft.
        Ich arbeite im Homeoffice und bin darauf angewiesen.
        Das Problem fing direkt nach dem automatischen Update am <date> an.
        Es passiert am Handy und am Tablet, liegt also nicht an einem Gerät.
        Ich habe jeden Schritt aus {F:Ihrer|eurer} Anleitung zur Fehlerbehebung befolgt.
        Mein Nachbar hat die gleiche Ausstattung und keinerlei Probleme.
        Manchmal klappt es zehn Minuten lang, dann geht es wieder nicht.
        Einen Screenshot der Fehlermeldung habe ich angehängt.
    """),
    ("account", "en"): _lines("""
        I'm using the web version on my laptop.
        I changed phones last week.
        I haven't signed in for a few months.
        I've tried the "forgot password" function three times now.
        I share the devices at home with my partner.
        I need to get in today to download something urgently.
        I need to get at my documents before a deadline this week.
        The last time I signed in was on my old laptop, which I no longer have.
        I'm sure the address is right, I copied it from your welcome e-mail.
        I checked my spam folder as well, there's nothing there.
        My daughter originally set everything up for me.
        I use a password manager, so typos are unlikely.
    """),
    ("account", "de"): _lines("""
        Ich nutze die Webversion am Laptop.
        Ich habe letzte Woche das Handy gewechselt.
        Ich war ein paar Monate nicht mehr eingeloggt.
        Die „Passwort vergessen“-Funktion habe ich schon dreimal probiert.
        Die Geräte zu Hause teile ich mit meinem Partner.
        Ich muss heute noch dringend rein, um etwas herunterzuladen.
        Ich muss diese Woche noch vor einer Frist an meine Unterlagen.
        Zuletzt angemeldet war ich auf meinem alten Laptop, den ich nicht mehr habe.
        Die Adresse stimmt sicher, ich habe sie aus {F:Ihrer|eurer} Willkommensmail kopiert.
        Im Spam-Ordner habe ich auch nachgesehen, da ist nichts.
        Eingerichtet hat das damals meine Tochter für mich.
        Ich nutze einen Passwort-Manager, Tippfehler sind also unwahrscheinlich.
    """),
    ("shipping", "en"): _lines("""
        It's a birthday present, so I'm waiting for it urgently.
        I ordered on <date> and got the dispatch confirmation the same day.
        I work from home, so someone is always here.
        My neighbours haven't received anything either.
        The timing really matters, it's for an event this weekend.
        I've ordered from you many times and this never happened before.
        The order confirmation came right away, so the order itself went through.
        I live on the third floor and the doorbell works fine.
        Usually your deliveries arrive within two days.
        I've already asked at the local parcel shop, they have nothing.
        The tracking page just says "in transit" without any details.
        I paid extra for fast delivery for exactly this reason.
    """),
    ("shipping", "de"): _lines("""
        Es ist ein Geburtstagsgeschenk, ich warte also dringend darauf.
        Bestellt habe ich am <date>, die Versandbestätigung kam am selben Tag.
        Ich arbeite von zu Hause, es ist also immer jemand da.
        Die Nachbarn haben auch nichts angenommen.
        Der Zeitpunkt ist wichtig, ich brauche es für eine Feier am Wochenende.
        Ich bestelle oft bei {F:Ihnen|euch} und das ist noch nie passiert.
        Die Bestellbestätigung kam sofort, die Bestellung an sich hat also geklappt.
        Ich wohne im dritten Stock und die Klingel funktioniert.
        Normalerweise kommen {F:Ihre|eure} Lieferungen innerhalb von zwei Tagen.
        Im Paketshop um die Ecke habe ich schon nachgefragt, da ist nichts.
        Auf der Tracking-Seite steht nur „unterwegs“, ohne Details.
        Ich habe extra für schnellen Versand bezahlt, genau deswegen.
    """),
    ("cancellation", "en"): _lines("""
        I've been a customer for <years> years, but my situation has changed.
        I'm moving to another city next month.
        I hardly use the service anymore.
        I've found a cheaper offer elsewhere.
        Money is tight at the moment.
        My contract started on <date>.
        Nothing against you, it just doesn't fit my life anymore.
        My employer now provides the same service for free.
        I'm retiring soon and need to cut my monthly costs.
        I've read the terms, but I'm not sure which notice period applies to me.
        The service was great for years, but I simply don't need it now.
        We're moving in together and now have one contract too many.
    """),
    ("cancellation", "de"): _lines("""
        Ich bin seit <years> Jahren Kunde, aber meine Situation hat sich geändert.
        Ich ziehe nächsten Monat in eine andere Stadt.
        Ich nutze den Dienst kaum noch.
        Ich habe woanders ein günstigeres Angebot gefunden.
        Das Geld ist gerade knapp.
        Mein Vertrag läuft seit dem <date>.
        Nichts gegen {F:Sie|euch}, es passt einfach nicht mehr in mein Leben.
        Mein Arbeitgeber stellt mir denselben Dienst jetzt kostenlos zur Verfügung.
        Ich gehe bald in Rente und muss meine monatlichen Kosten senken.
        Die AGB habe ich gelesen, bin mir aber nicht sicher, welche Frist für mich gilt.
        Der Dienst war jahrelang super, ich brauche ihn jetzt einfach nicht mehr.
        Wir ziehen zusammen und haben jetzt einen Vertrag zu viel.
    """),
    ("privacy", "en"): _lines("""
        I take the protection of my data very seriously.
        I recently read an article about data brokers.
        I know my rights as a consumer in the EU.
        I never knowingly gave permission for this.
        I use a separate e-mail address for every shop.
        A friend told me about his experience with your company.
        I work in IT and know how much can be inferred from such data.
        I keep getting targeted ads for things I only ever bought from you.
        I don't remember ever ticking a box for this.
        Several friends of mine got the same kind of e-mail.
        I'd like a clear answer rather than a link to a generic FAQ page.
        Data protection matters a lot to me since my identity was misused a few years ago.
    """),
    ("privacy", "de"): _lines("""
        Mir ist der Schutz meiner Daten sehr wichtig.
        Ich habe neulich einen Artikel über Datenhändler gelesen.
        Ich kenne meine Rechte als Verbraucher in der EU.
        Wissentlich habe ich dafür nie eine Erlaubnis gegeben.
        Ich nutze für jeden Shop eine eigene E-Mail-Adresse.
        Ein Freund hat mir von seinen Erfahrungen mit {F:Ihrer|eurer} Firma erzählt.
        Ich arbeite in der IT und weiß, was man aus solchen Daten alles ableiten kann.
        Ich bekomme gezielte Werbung für Dinge, die ich nur bei {F:Ihnen|euch} gekauft habe.
        Ich kann mich nicht erinnern, dafür jemals ein Häkchen gesetzt zu haben.
        Mehrere Freunde von mir haben die gleiche Art von Mail bekommen.
        Ich möchte eine klare Antwort und keinen Link auf eine allgemeine FAQ-Seite.
        Datenschutz ist mir wichtig, seit meine Identität vor ein paar Jahren missbraucht wurde.
    """),
}
GENERIC_CONTEXT = {
    "en": _lines("""
        I've been a customer for <years> years and never had to contact you before.
        I already called the hotline, but nobody could help me.
        This is my second message about this, the first one (<ticket>) got no answer.
        I'm writing on behalf of my elderly mother, who isn't very good with computers.
        Your chatbot just sent me round in circles.
        I looked through the FAQ but couldn't find anything.
        I'm travelling at the moment, so e-mail is the best way to reach me.
        My reference from the last contact is <ticket>.
    """),
    "de": _lines("""
        Ich bin seit <years> Jahren Kunde und musste mich noch nie melden.
        Bei der Hotline war ich schon, da konnte mir aber niemand helfen.
        Das ist schon meine zweite Nachricht dazu, die erste (<ticket>) blieb unbeantwortet.
        Ich schreibe für meine Mutter, die mit Computern nicht so gut zurechtkommt.
        Der Chatbot hat mich nur im Kreis geschickt.
        In den FAQ habe ich nichts dazu gefunden.
        Ich bin gerade unterwegs, per Mail {F:erreichen Sie|erreicht ihr} mich am besten.
        Meine Vorgangsnummer vom letzten Kontakt ist <ticket>.
    """),
}
DETAIL: dict[tuple[str, str], tuple[str, ...]] = {
    ("billing", "en"): _lines("""
        Invoice number: <invoice>.
        Customer no. <cust>.
        The amount in question is <amount>.
        IBAN for the refund: <iban>.
        The charge appeared on <date>.
    """),
    ("billing", "de"): _lines("""
        Rechnungsnummer: <invoice>.
        Kundennr. <cust>.
        Es geht um <amount>.
        IBAN für die Erstattung: <iban>.
        Abgebucht wurde am <date>.
    """),
    ("technical", "en"): _lines("""
        Device: <product>, app version <ver>.
        Error code: <error>.
        Customer number <cust>.
        Serial number <serial>.
    """),
    ("technical", "de"): _lines("""
        Gerät: <product>, App-Version <ver>.
        Fehlercode: <error>.
        Kundennummer <cust>.
        Seriennummer <serial>.
    """),
    ("account", "en"): _lines("""
        My customer number is <cust>.
        Registered e-mail: <email>.
        I'm registered as <email>.
    """),
    ("account", "de"): _lines("""
        Meine Kundennummer ist <cust>.
        Registrierte E-Mail: <email>.
        Ich bin mit <email> angemeldet.
    """),
    ("shipping", "en"): _lines("""
        Order number: <order>.
        I ordered on <date>.
        Tracking number: <tracking>.
    """),
    ("shipping", "de"): _lines("""
        Bestellnummer: <order>.
        Bestellt am <date>.
        Sendungsnummer: <tracking>.
    """),
    ("cancellation", "en"): _lines("""
        Contract number: <contract>.
        Customer number: <cust>.
        The contract is in my name, <name>.
    """),
    ("cancellation", "de"): _lines("""
        Vertragsnummer: <contract>.
        Kundennummer: <cust>.
        Der Vertrag läuft auf meinen Namen, <name>.
    """),
    ("privacy", "en"): _lines("""
        Customer number: <cust>.
        Registered e-mail: <email>.
        Please reply to <email> only.
    """),
    ("privacy", "de"): _lines("""
        Kundennummer: <cust>.
        Registrierte E-Mail: <email>.
        Bitte nur an <email> antworten.
    """),
}

GREETING = {
    ("formal", "en"): ("Dear Sir or Madam,", "Dear support team,", "To whom it may concern,", "Good afternoon,"),
    ("polite", "en"): ("Hello,", "Hi there,", "Good morning,", "Hello support team,", "Hi, I hope you're well."),
    ("informal", "en"): ("hey", "Hi guys,", "yo support", "hiya,", "Hey team!"),
    ("angry", "en"): ("Hello.", "Seriously?", "Right, this is my third attempt.", "To your so-called support:"),
    ("formal", "de"): ("Sehr geehrte Damen und Herren,", "Guten Tag,", "Sehr geehrtes Support-Team,"),
    ("polite", "de"): ("Hallo,", "Guten Morgen,", "Hallo liebes Support-Team,", "Hallo zusammen,", "Hi Support-Team,"),
    ("informal", "de"): ("Hi,", "Hey Leute,", "Moin,", "Servus,", "Hallo ihr Lieben,", "Hi Support,"),
    ("angry", "de"): ("Hallo.", "So langsam reicht es.", "Ernsthaft?", "An den sogenannten Kundenservice:"),
}
CLOSER = {
    ("formal", "en"): ("Kind regards,", "Yours faithfully,", "Best regards,", "Thank you in advance for your help. Kind regards,"),
    ("polite", "en"): ("Thanks a lot!", "Thank you!", "Many thanks in advance.", "Cheers,", "Best,"),
    ("informal", "en"): ("thx", "cheers", "ta", "thanks!!", "cheers mate"),
    ("angry", "en"): ("I expect an answer today.", "Fix it.", "Regards.", "I'm running out of patience."),
    ("formal", "de"): ("Mit freundlichen Grüßen", "Freundliche Grüße", "Vielen Dank im Voraus und freundliche Grüße"),
    ("polite", "de"): ("Vielen Dank!", "Danke schon mal!", "Viele Grüße", "Beste Grüße", "Thx und viele Grüße"),
    ("informal", "de"): ("LG", "Grüße", "Danke euch!", "thx!", "Cheers"),
    ("angry", "de"): ("Ich erwarte eine Antwort bis morgen.", "Langsam reicht es wirklich.", "Gruß"),
}
FILLER = {
    "en": _lines("""
        Sorry, this is going to be a bit long.
        I don't usually write these messages, but here we go.
        To give you the full picture, let me start from the beginning.
        I've tried to sort this out myself, but no luck.
        My neighbour said I should just write to you, so here I am.
    """),
    "de": _lines("""
        Sorry, das wird jetzt etwas länger.
        Ich schreibe sowas eigentlich nie, aber jetzt muss es sein.
        Damit {F:Sie|ihr} das ganze Bild {F:haben|habt}, fange ich von vorne an.
        Ich habe schon versucht, das selbst zu lösen, leider ohne Erfolg.
        Mein Nachbar meinte, ich soll einfach mal schreiben, also bitte.
    """),
}
EXTRA = {
    ("angry", "en"): ("This is the third time I have to write!", "Absolutely unacceptable.",
                      "I've been on hold for 40 minutes.", "Nobody answers the phone!"),
    ("polite", "en"): ("It's a bit urgent, thanks for looking into it.", "I'd really appreciate a quick reply.",
                       "No rush, but an answer this week would be great."),
    ("angry", "de"): ("Das ist jetzt schon das dritte Mal!", "Eine Frechheit ist das.",
                      "Ich hänge seit 40 Minuten in der Warteschleife.", "Am Telefon geht niemand ran!"),
    ("polite", "de"): ("Es ist etwas dringend, danke fürs Kümmern.", "Über eine schnelle Antwort würde ich mich freuen.",
                       "Eilt nicht, aber eine Antwort diese Woche wäre super.", "Sorry für den Aufwand!"),
}

FIRST = {"de": ("Anna", "Lukas", "Sophie", "Jonas", "Marie", "Felix", "Lena", "Paul", "Hannah",
                "Tim", "Julia", "Max", "Erika", "Leon", "Mia", "Ben", "Ayşe", "Mehmet"),
         "en": ("Jane", "John", "Emily", "James", "Olivia", "Jack", "Sarah", "Tom", "Grace",
                "Oliver", "Chloe", "Harry", "Priya", "Sam")}
LAST = {"de": ("Mustermann", "Beispiel", "Muster", "Exempel", "Platzhalter"),
        "en": ("Doe", "Roe", "Example", "Sample", "Placeholder", "Dummy")}
PRODUCT = {"de": ("Router X200", "HomeHub 2", "Mesh-Repeater M3", "Saugroboter R5",
                  "Fitness-Tracker Pulse", "Beamer Lumo", "Receiver TVbox 4K"),
           "en": ("X200 router", "HomeHub 2", "M3 mesh repeater", "R5 robot vacuum",
                  "Pulse fitness tracker", "Lumo projector", "TVbox 4K receiver")}
PLAN = {"de": ("Premium-Tarif", "Familientarif", "Tarif Unlimited M", "Streaming-Tarif Plus", "DSL-Tarif 100"),
        "en": ("Premium plan", "Family plan", "Unlimited M tariff", "Streaming Plus plan", "DSL 100 plan")}
ERRORS = ("E-402", "E-1003", "0x80070005", "HTTP 500", "ERR_TIMEOUT", "E17", "HTTP 503", "NET-22")
MONTHS = {"de": ("Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August",
                 "September", "Oktober", "November", "Dezember"),
          "en": ("January", "February", "March", "April", "May", "June", "July", "August",
                 "September", "October", "November", "December")}
EMPHASIS = ("nicht", "immer", "sofort", "endlich", "wieder", "doppelt", "nie", "never",
            "again", "still", "twice", "now", "today", "immediately", "nothing", "nichts")
DE_WORDS = frozenset("ich und nicht die der das ist mein meine bitte mit von auf für wie wo "
                     "ein eine zu den dem noch schon kann nach seit will geht hallo danke grüße "
                     "habe wird wurde mir mich aber auch sie ihr es".split())
EN_WORDS = frozenset("i and not the is my please with of on for how where a an to can since "
                     "want hello thanks have was this me but you it your what why".split())


# --------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------

_F_RE = re.compile(r"\{F:([^{}|]*)\|([^{}]*)\}")
_ALT_RE = re.compile(r"\{([^{}]*)\}")
_SLOT_RE = re.compile(r"<(\w+)>")
_TRANSLIT = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "Ä": "Ae", "Ö": "Oe",
                           "Ü": "Ue", "ş": "s", "ç": "c"})


@dataclass
class Ticket:
    """Per-ticket state: language, form of address, persona and slot cache."""

    lang: str
    formal: bool
    first: str
    last: str
    cache: dict[str, str] = field(default_factory=dict)


def _slot(name: str, rng: random.Random, t: Ticket) -> str:
    """Generate (and cache per ticket) a fictitious detail value."""
    if name in t.cache:
        return t.cache[name]
    de = t.lang == "de"
    year = rng.choice((2023, 2024, 2025))
    login = f"{t.first}.{t.last}".lower().translate(_TRANSLIT)
    if name == "order":
        v = rng.choice((f"#{rng.randint(100000, 999999)}", f"A-{rng.randint(10**7, 10**8 - 1)}",
                        f"{year}-{rng.randint(100000, 999999)}"))
    elif name == "invoice":
        v = f"{'RE' if de else 'INV'}-{year}-{rng.randint(0, 99999):05d}"
    elif name == "cust":
        v = rng.choice((f"KD-{rng.randint(100000, 999999)}" if de else f"C{rng.randint(1000000, 9999999)}",
                        str(rng.randint(10**7, 10**8 - 1))))
    elif name == "contract":
        v = f"{'V' if de else 'CT'}-{rng.randint(10**7, 10**8 - 1)}"
    elif name == "amount":
        x = rng.choice((4.99, 9.99, 12.50, 19.99, 29.99, 39.00, 49.99, 59.90, 79.00, 89.99, 119.00, 149.99))
        v = f"{x:.2f}".replace(".", ",") + " €" if de else rng.choice((f"€{x:.2f}", f"{x:.2f} EUR"))
    elif name == "date":
        d, m = rng.randint(1, 28), rng.randint(1, 12)
        if de:
            v = rng.choice((f"{d:02d}.{m:02d}.", f"{d}. {MONTHS['de'][m - 1]}"))
        else:
            v = rng.choice((f"{MONTHS['en'][m - 1]} {d}", f"{d} {MONTHS['en'][m - 1]}"))
    elif name == "days":
        v = str(rng.randint(3, 21))
    elif name == "years":
        v = str(rng.randint(2, 15))
    elif name == "product":
        v = rng.choice(PRODUCT[t.lang])
    elif name == "plan":
        v = rng.choice(PLAN[t.lang])
    elif name == "ver":
        v = f"{rng.randint(2, 7)}.{rng.randint(0, 12)}.{rng.randint(0, 9)}"
    elif name == "error":
        v = rng.choice(ERRORS)
    elif name == "email":
        v = f"{login}@example.{rng.choice(('com', 'org', 'net'))}"
    elif name == "newemail":
        v = f"{login[0]}.{t.last.lower().translate(_TRANSLIT)}{rng.randint(1, 99)}@example.org"
    elif name == "name":
        v = f"{t.first} {t.last}"
    elif name == "iban":
        v = f"DE00 0000 0000 0000 {rng.randint(0, 9999):04d} 00"
    elif name == "ticket":
        v = f"#T-{rng.randint(10000, 99999)}"
    elif name == "tracking":
        v = f"TRK{rng.randint(10**9, 10**10 - 1)}"
    elif name == "serial":
        v = f"SN-{rng.randint(10**6, 10**7 - 1)}"
    else:
        raise KeyError(f"unknown slot <{name}>")
    t.cache[name] = v
    return v


def realise(template: str, rng: random.Random, t: Ticket) -> str:
    """Resolve form-of-address markers, random alternatives and slots."""
    s = _F_RE.sub(lambda m: m.group(1) if t.formal else m.group(2), template)
    s = _ALT_RE.sub(lambda m: rng.choice(m.group(1).split("|")), s)
    s = _SLOT_RE.sub(lambda m: _slot(m.group(1), rng, t), s)
    s = re.sub(r"\.\.(?!\.)", ".", re.sub(r"[ \t]{2,}", " ", s))
    return re.sub(r"\s+([,!?.])", r"\1", s).strip()


def _typo(word: str, rng: random.Random) -> str:
    """Apply one keyboard-style typo (swap, drop or double a letter)."""
    i = rng.randint(1, len(word) - 2)
    op = rng.randrange(3)
    if op == 0:
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    if op == 1:
        return word[:i] + word[i + 1:]
    return word[:i] + word[i] + word[i:]


def _map_words(text: str, rng: random.Random, k: int,
               fn: Callable[[str], str], pred: Callable[[str], bool]) -> str:
    """Apply ``fn`` to up to ``k`` randomly chosen words satisfying ``pred``."""
    words = text.split(" ")
    idx = [i for i, w in enumerate(words) if pred(w.strip(".,!?:;\"“„"))]
    for i in sorted(rng.sample(idx, min(k, len(idx)))):
        w = words[i]
        core = w.strip(".,!?:;\"“„")
        start = w.find(core)
        words[i] = w[:start] + fn(core) + w[start + len(core):]
    return " ".join(words)


def stylise(text: str, rng: random.Random, tone: str, lang: str) -> str:
    """Add human noise: typos, lower case, dropped punctuation, caps, umlaut spelling."""
    informal = tone in ("informal", "terse")
    if rng.random() < (0.3 if informal else 0.15):
        text = _map_words(text, rng, rng.choice((1, 1, 2)), lambda w: _typo(w, rng),
                          lambda w: w.isalpha() and len(w) >= 5)
    if tone == "angry":
        if rng.random() < 0.6:
            emph = [w for w in EMPHASIS if re.search(rf"\b{w}\b", text)]
            if emph:
                w = rng.choice(emph)
                text = re.sub(rf"\b{w}\b", w.upper(), text, count=1)
            else:
                text = _map_words(text, rng, 1, str.upper, lambda w: w.isalpha() and len(w) >= 4)
        ends = [m.start() for m in re.finditer(r"(?<=[a-zäöüß]{3})\.(?=\s|$)", text)]
        for i in rng.sample(ends, min(len(ends), rng.choice((0, 1, 2)))):
            text = text[:i] + "!" + text[i + 1:]
    elif rng.random() < 0.04:
        text = _map_words(text, rng, 1, str.upper, lambda w: w.isalpha() and len(w) >= 4)
    if rng.random() < (0.3 if informal else 0.04):
        text = text.lower()
    if rng.random() < (0.25 if informal else 0.04):
        text = re.sub(r"[.,](?=\s|$)", "", text)
    if lang == "de" and rng.random() < 0.05:
        text = text.translate(_TRANSLIT)
    return text


def _pick(pool: dict[tuple[str, str], tuple[str, ...]], tone: str, lang: str, rng: random.Random) -> str:
    """Pick from a tone-keyed pool; terse/rambling borrow from polite."""
    key = {"terse": "polite", "rambling": "polite"}.get(tone, tone)
    return rng.choice(pool[(key, lang)])


def compose(label: str, lang: str, rng: random.Random) -> tuple[str, dict[str, str]]:
    """Compose one ticket text; returns (text, meta) where meta is for stats only."""
    tone = rng.choices(TONES, TONE_WEIGHTS)[0]
    shape = rng.choices(("short", "medium", "long"), SHAPE_WEIGHTS[tone])[0]
    formal = tone == "formal" or (tone != "informal" and rng.random() < 0.5)
    t = Ticket(lang, formal, rng.choice(FIRST[lang]), rng.choice(LAST[lang]))
    meta = {"tone": tone, "shape": shape, "distractor": ""}
    if shape == "short":
        text = realise(rng.choice(TERSE[(label, lang)]), rng, t)
        if tone == "angry":
            text = text.rstrip(".!?") + rng.choice(("!!", "!!!", "?!"))
        return stylise(text, rng, tone, lang), meta

    long = shape == "long"
    core = rng.choice(CORE[(label, lang)])
    before: list[str] = []
    after: list[str] = []
    if rng.random() < DISTRACTOR_P:
        if rng.random() < COMBO_SHARE:
            cause, core = (s.strip() for s in rng.choice(COMBO[(label, lang)]).split("::"))
            meta["distractor"] = f"combo:{cause}"
        else:
            other = rng.choice([x for x in LABELS if x != label])
            mention = rng.choice(MENTION[(other, lang)])
            meta["distractor"] = f"mention:{other}"
            if rng.random() < 0.7:
                before = [mention] + ([rng.choice(BRIDGE[lang])] if rng.random() < 0.5 else [])
            else:
                after = [rng.choice(AFTER_PREFIX[lang]) + mention]

    # Label-specific context first; at most one or two generic sentences.
    n_generic = rng.choice((0, 1, 1, 2) if tone == "rambling" else (0, 0, 1))
    ctx_pool = rng.sample(GENERIC_CONTEXT[lang], n_generic) + list(CONTEXT[(label, lang)])
    rng.shuffle(ctx_pool)
    n_ctx = rng.choice((2, 3)) if long else int(rng.random() < 0.5)
    contexts = [ctx_pool.pop() for _ in range(n_ctx)]
    filler = [rng.choice(FILLER[lang])] if rng.random() < (0.8 if tone == "rambling" else 0.25 * long) else []
    detail = [rng.choice(DETAIL[(label, lang)])] if rng.random() < (0.8 if long else 0.35) else []
    extra_key = ("angry" if tone == "angry" else "polite", lang)
    extra = [rng.choice(EXTRA[extra_key])] if rng.random() < (0.7 if long else 0.3) else []

    def body() -> list[str]:
        request = before + [core] + detail + after
        if not long and contexts and rng.random() < 0.25:
            return request + contexts + extra
        return filler + contexts + request + extra

    p_greet = {"formal": 1.0, "polite": 0.7, "informal": 0.6, "angry": 0.4, "terse": 0.0, "rambling": 0.9}[tone]
    greeting = _pick(GREETING, tone, lang, rng) if rng.random() < max(p_greet, 0.9 * long) else ""
    p_close = {"formal": 1.0, "polite": 0.6, "informal": 0.5, "angry": 0.4, "terse": 0.1, "rambling": 0.9}[tone]
    closer = _pick(CLOSER, tone, lang, rng) if rng.random() < max(p_close, 0.9 * long) else ""
    sign = ""
    if closer and rng.random() < (0.9 if tone == "formal" else 0.45):
        sign = t.first if tone == "informal" else rng.choice(
            (f"{t.first} {t.last}", f"{t.first} {t.last}", "<name>\n<email>", "<name>\n"
             + ("Kundennr. <cust>" if lang == "de" else "Customer no. <cust>")))

    sentences = body()
    target = rng.randint(55, 95)
    while long and sum(len(s.split()) for s in sentences) < target and ctx_pool:
        contexts.append(ctx_pool.pop())
        sentences = body()
    text_body = " ".join(realise(s, rng, t) for s in sentences)
    greeting, closer, sign = (realise(x, rng, t) for x in (greeting, closer, sign))
    if not sign:
        closer = closer.rstrip(",")
    if long or tone == "formal":
        parts = [p for p in (greeting, text_body, "\n".join(x for x in (closer, sign) if x)) if p]
        text = "\n\n".join(parts)
    else:
        text = " ".join(p for p in (greeting, text_body, closer, sign.replace("\n", " ")) if p)
    return stylise(text, rng, tone, lang), meta


# --------------------------------------------------------------------------
# Dataset assembly, validation and stats
# --------------------------------------------------------------------------

def normalise(text: str) -> str:
    """Dedup key: lower-case, punctuation stripped, numbers masked, whitespace collapsed."""
    toks = re.sub(r"[^\w\s]", " ", text.lower()).split()
    out: list[str] = []
    for tok in ("0" if any(c.isdigit() for c in tok) else tok for tok in toks):
        if not (tok == "0" and out and out[-1] == "0"):
            out.append(tok)
    return " ".join(out)


def plan_slots(n: int, rng: random.Random) -> list[tuple[str, str]]:
    """Deterministic (label, lang) slots: weighted label counts, ~55 % German each."""
    total = sum(LABEL_WEIGHTS.values())
    raw = {lab: n * LABEL_WEIGHTS[lab] / total for lab in LABELS}
    counts = {lab: int(raw[lab]) for lab in LABELS}
    for lab in sorted(LABELS, key=lambda x: (counts[x] - raw[x], x))[: n - sum(counts.values())]:
        counts[lab] += 1
    slots = []
    for lab in LABELS:
        n_de = round(counts[lab] * GERMAN_SHARE)
        slots += [(lab, "de")] * n_de + [(lab, "en")] * (counts[lab] - n_de)
    rng.shuffle(slots)
    return slots


def _near_dup(words: set[str], others: list[set[str]], threshold: float = 0.8) -> bool:
    """True if the word set overlaps some earlier ticket by Jaccard > threshold."""
    return any(len(words & o) > threshold * len(words | o) for o in others)


def generate(n: int, seed: int) -> list[tuple[str, str, str, dict[str, str]]]:
    """Generate ``n`` unique tickets as (label, lang, text, meta)."""
    rng = random.Random(seed)
    seen: set[str] = set()
    word_sets: dict[str, list[set[str]]] = {lab: [] for lab in LABELS}
    out = []
    for label, lang in plan_slots(n, rng):
        for _ in range(500):
            text, meta = compose(label, lang, rng)
            wc = len(text.split())
            key = normalise(text)
            words = set(key.split())
            if key in seen or not 3 <= wc <= 120 or (meta["shape"] == "short" and wc > 8) \
                    or (meta["shape"] == "long" and wc < 60) or _near_dup(words, word_sets[label]):
                continue
            seen.add(key)
            word_sets[label].append(words)
            out.append((label, lang, text, meta))
            break
        else:
            raise RuntimeError(f"could not find a unique ticket for {label}/{lang}")
    return out


def to_record(label: str, text: str) -> dict[str, list[dict[str, str]]]:
    """OpenAI chat fine-tuning record."""
    return {"messages": [{"role": "system", "content": SYSTEM},
                         {"role": "user", "content": text},
                         {"role": "assistant", "content": label}]}


def validate(path: Path) -> int:
    """Check every line is a valid record with exactly the required keys; return count."""
    n = 0
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        rec = json.loads(line)
        msgs = rec["messages"]
        ok = (set(rec) == {"messages"} and len(msgs) == 3
              and all(set(m) == {"role", "content"} and isinstance(m["content"], str) for m in msgs)
              and [m["role"] for m in msgs] == ["system", "user", "assistant"]
              and msgs[0]["content"] == SYSTEM and msgs[2]["content"] in LABELS and msgs[1]["content"])
        if not ok:
            raise ValueError(f"{path}:{i}: malformed record")
        n += 1
    return n


def guess_lang(text: str) -> str:
    """Crude stop-word language guess (for stats only)."""
    toks = re.findall(r"[a-zäöüß]+", text.lower())
    de = sum(tok in DE_WORDS for tok in toks) + 2 * sum(ch in "äöüß" for ch in text.lower())
    en = sum(tok in EN_WORDS for tok in toks)
    return "de" if de > en else "en"


def print_stats(rows: list[tuple[str, str, str, dict[str, str]]]) -> None:
    """Print label/language counts, length stats, distractor share and label-word leakage."""
    wcs = [len(text.split()) for _, _, text, _ in rows]
    print(f"tickets: {len(rows)}  words min/median/max: {min(wcs)}/{statistics.median(wcs)}/{max(wcs)}")
    print(f"{'label':<13}{'total':>6}{'de':>5}{'en':>5}{'distr':>7}{'label-word':>12}")
    for lab in LABELS:
        sub = [r for r in rows if r[0] == lab]
        leak = sum(bool(re.search(rf"\b{lab}\b", r[2], re.I)) for r in sub)
        print(f"{lab:<13}{len(sub):>6}{sum(r[1] == 'de' for r in sub):>5}{sum(r[1] == 'en' for r in sub):>5}"
              f"{sum(bool(r[3]['distractor']) for r in sub):>7}{leak:>12}")
    n_de = sum(r[1] == "de" for r in rows)
    agree = sum(guess_lang(r[2]) == r[1] for r in rows)
    print(f"german: {n_de} ({n_de / len(rows):.1%}), heuristic agrees on {agree}/{len(rows)}")
    nd = sum(bool(r[3]["distractor"]) for r in rows)
    print(f"with distractor: {nd} ({nd / len(rows):.1%}); combos: "
          f"{sum(r[3]['distractor'].startswith('combo') for r in rows)}")
    for shape in ("short", "medium", "long"):
        w = [len(r[2].split()) for r in rows if r[3]["shape"] == shape]
        print(f"  {shape:<7}{len(w):>4}  words {min(w)}-{max(w)} (median {statistics.median(w)})")
    tones = {tone: sum(r[3]["tone"] == tone for r in rows) for tone in TONES}
    print("tones:", ", ".join(f"{k} {v}" for k, v in tones.items()))


def main() -> None:
    """CLI entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n", type=int, default=720, help="total number of tickets")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--quiet", action="store_true", help="do not print stats")
    args = ap.parse_args()
    rows = generate(args.n, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", encoding="utf-8", newline="\n") as f:
        for label, _, text, _ in rows:
            f.write(json.dumps(to_record(label, text), ensure_ascii=False) + "\n")
    count = validate(args.out)
    if not args.quiet:
        print(f"wrote {count} records to {args.out}")
        print_stats(rows)


if __name__ == "__main__":
    main()
