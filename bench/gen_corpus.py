#!/usr/bin/python3
"""gen_corpus.py - writes the HL7 v2 corpus that Tern's parse benchmark reads.

Deterministic: the same --seed and --size-mb always give the same bytes (no
clock, no environment, only Python's seeded random.Random). Stdlib only; run
with /usr/bin/python3 (any Python 3.7+ works).

    /usr/bin/python3 bench/gen_corpus.py [--size-mb 110] [--out bench/out/corpus.hl7]

What the file holds (MB = 10^6 bytes; generation stops at the first message
boundary past --size-mb):
  * ADT^A01 / ADT^A04 / ADT^A08 (about 60% of messages): EVN, PID with 3-5
    CX identifiers (assigning authority as HD with sub-components, identifier
    type), several XPN names, 2-3 XAD addresses, several XTN phones/e-mails,
    PD1, 1-4 NK1, PV1 with repeated attending doctors, PV2, vital-sign OBX,
    AL1, DG1, GT1, IN1.
  * ORU^R01 (about 40%): PID, PV1, ORC, OBR, exactly 50 OBX (mostly NM with
    UCUM units, reference ranges and abnormal flags; some ST/TX with escaped
    free text) and a few NTE.
  * Escape sequences (\\F\\ \\S\\ \\T\\ \\R\\ \\E\\ \\X0D0A\\ \\.br\\, escape char
    backslash) produced by escaping free text that really contains | ^ & ~
    backslash and line breaks.
  * About 15% of messages declare MSH-18 "UNICODE UTF-8" and carry non-ASCII
    names; all other messages are pure ASCII.
  * Segments end with CR. After each message comes either "\\n" (so the last
    segment ends in CRLF, as when a file is viewed per message) or "\\r\\n"
    (a real empty line); readers must treat CR, LF and CRLF as line ends and
    skip empty lines.
  * About 10% of messages sit inside file/batch envelopes:
    FHS, then 1-3 x (BHS, messages, BTS|<messages in batch>), then
    FTS|<batches in file>, with the counts correct.
  * MSH-10 (and FHS-11/BHS-11) control ids are unique across the file.

A summary (bytes, messages, segments, ...) is printed at the end. The file is
written to OUT.tmp and renamed, so an interrupted run never leaves a
truncated corpus behind.
"""

import argparse
import os
import random
import sys
import time

DEFAULT_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "out", "corpus.hl7")

# --- value pools -----------------------------------------------------------

FAMILY = (
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez "
    "Hernandez Lopez Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin "
    "Lee Perez Thompson White Harris Sanchez Clark Ramirez Lewis Robinson Walker "
    "Young Allen King Wright Scott Torres Nguyen Hill Flores Green Adams Nelson "
    "Baker Hall Rivera Campbell Mitchell Carter Roberts Schmidt Weber Fischer "
    "Meyer Wagner Becker Schulz Hoffmann Koch Richter Klein Wolf Neumann Schwarz "
    "Zimmermann Braun Hofmann Hartmann Lange Schmitt Werner Krause Lehmann Kowalski "
    "Nowak Jansen DeVries Bakker Visser Smit Rossi Russo Ferrari Esposito Bianchi "
    "O'Brien O'Connor McCarthy Fitzgerald Smith-Jones Walsh Byrne Ryan"
).split()
FAMILY_UTF8 = (
    "Müller Schröder Groß Krüger Jäger Möller Weiß Köhler Böhm Günther Dvořák "
    "Novák Svoboda Černý Łukasiewicz Wiśniewski Wójcik Kamiński Søndergaard Ødegård "
    "Ångström Nuñez Peña Muñoz Ibáñez Gómez Fernández Núñez Françoise Lefèvre "
    "Gérard Dubois Chénier Ólafsson Þórsson Ramírez Åberg Çelik Yılmaz Öztürk "
    "Παπαδόπουλος Иванов Петрова 山田 佐藤 김 이"
).split()
GIVEN_M = (
    "James John Robert Michael William David Richard Joseph Thomas Charles "
    "Christopher Daniel Matthew Anthony Mark Donald Steven Paul Andrew Joshua "
    "Kenneth Kevin Brian George Timothy Ronald Edward Jason Jeffrey Ryan Jacob "
    "Gary Nicholas Eric Jonathan Stephen Larry Justin Scott Brandon Hans Peter "
    "Klaus Stefan Thomas Lukas Jan Piet Marco Luca Sean Patrick"
).split()
GIVEN_F = (
    "Mary Patricia Jennifer Linda Elizabeth Barbara Susan Jessica Sarah Karen "
    "Lisa Nancy Betty Margaret Sandra Ashley Kimberly Emily Donna Michelle "
    "Carol Amanda Dorothy Melissa Deborah Stephanie Rebecca Sharon Laura Cynthia "
    "Anna Maria Julia Sophie Laura Lea Emma Giulia Chiara Aoife Siobhan Eva"
).split()
GIVEN_UTF8 = (
    "Jürgen Jörg Björn Søren Håkon Zoë Chloé Hélène Renée José María Sofía "
    "Łukasz Paweł Małgorzata Zuzana Tomáš Jiří Ágnes Ørjan Æsa Íris Þóra "
    "Mustafa Gülşen Émile François Noël Inés Dagný Ελένη Дмитрий 太郎 花子 민준"
).split()
STREETS = (
    "Main St;Oak Ave;Maple Dr;Cedar Ln;Elm St;Washington Blvd;Lake View Rd;"
    "Hill Crest Way;Park Pl;River Rd;Sunset Blvd;Highland Ave;Church St;Mill Rd;"
    "Hauptstrasse;Bahnhofstrasse;Gartenweg;Schillerstrasse;Kerkstraat;Via Roma;"
    "High St;Station Rd;Victoria Rd;Green Ln;Manor Rd"
).split(";")
STREETS_UTF8 = "Königstraße;Müllerstraße;Rue de l'Église;Calle Mayor Nº 3;Løvstræde;Straße des 17. Juni;Ulica Łąkowa".split(";")
CITIES = (
    ("Springfield", "IL", "62704", "USA"), ("Madison", "WI", "53703", "USA"),
    ("Portland", "OR", "97205", "USA"), ("Austin", "TX", "78701", "USA"),
    ("Boston", "MA", "02108", "USA"), ("Denver", "CO", "80202", "USA"),
    ("Columbus", "OH", "43215", "USA"), ("Raleigh", "NC", "27601", "USA"),
    ("Berlin", "BE", "10115", "DEU"), ("Hamburg", "HH", "20095", "DEU"),
    ("Amsterdam", "NH", "1012", "NLD"), ("Milano", "MI", "20121", "ITA"),
    ("Dublin", "D", "D02", "IRL"), ("Leeds", "WYK", "LS1 4AP", "GBR"),
)
CITIES_UTF8 = (
    ("München", "BY", "80331", "DEU"), ("Köln", "NW", "50667", "DEU"),
    ("Zürich", "ZH", "8001", "CHE"), ("Malmö", "M", "211 20", "SWE"),
    ("København", "84", "1050", "DNK"), ("Kraków", "MA", "31-001", "POL"),
    ("São Paulo", "SP", "01000-000", "BRA"), ("Besançon", "BFC", "25000", "FRA"),
)
FACILITIES = (
    ("EPIC", "GENHOSP", "1.2.840.114350.1.13.0.1.7.2.3688884"),
    ("CERNER", "STMARY", "2.16.840.1.113883.3.1234"),
    ("MEDITECH", "VALLEYMC", "2.16.840.1.113883.3.5678"),
    ("LABSYS", "CENTRALLAB", "2.16.840.1.113883.3.9012"),
    ("SAP_ISH", "UKLINIK", "1.2.276.0.76.3.1.999"),
)
RECEIVERS = (("TERN", "HUB"), ("ADTROUTER", "INTEGRATION"), ("HIE", "STATEHIE"), ("PACS", "RADIOLOGY"))
ID_TYPES = ("MR", "PI", "AN", "PT", "SS", "DL", "PPN", "NI", "HC", "JHN")
RELATIONS = (
    ("SPO", "Spouse"), ("MTH", "Mother"), ("FTH", "Father"), ("CHD", "Child"),
    ("SIB", "Sibling"), ("FND", "Friend"), ("GRD", "Guardian"), ("EMC", "Emergency contact"),
)
ALLERGIES = (
    ("DA", "70618^Penicillin^RXNORM", "SV", "Hives~Anaphylaxis"),
    ("DA", "2670^Codeine^RXNORM", "MO", "Nausea \\T\\ vomiting"),
    ("DA", "1191^Aspirin^RXNORM", "MI", "GI upset"),
    ("FA", "256349002^Peanut^SCT", "SV", "Anaphylaxis~Throat swelling"),
    ("FA", "102263004^Eggs^SCT", "MI", "Rash"),
    ("EA", "111088007^Latex^SCT", "MO", "Contact dermatitis"),
    ("MA", "227493005^Cashew nuts^SCT", "SV", "Urticaria"),
    ("DA", "7980^Penicillin G^RXNORM", "SV", "Rash~Fever"),
    ("DA", "10180^Sulfamethoxazole^RXNORM", "MO", "Stevens-Johnson syndrome"),
)
DIAGNOSES = (
    ("J18.9", "Pneumonia, unspecified organism"), ("I10", "Essential (primary) hypertension"),
    ("E11.9", "Type 2 diabetes mellitus without complications"), ("N39.0", "Urinary tract infection, site not specified"),
    ("I21.4", "Non-ST elevation (NSTEMI) myocardial infarction"), ("K35.80", "Unspecified acute appendicitis"),
    ("S72.001A", "Fracture of unsp part of neck of right femur, init"), ("J44.1", "COPD with (acute) exacerbation"),
    ("I50.9", "Heart failure, unspecified"), ("A41.9", "Sepsis, unspecified organism"),
    ("R07.9", "Chest pain, unspecified"), ("F32.9", "Major depressive disorder, single episode"),
    ("M54.5", "Low back pain"), ("E78.5", "Hyperlipidemia, unspecified"),
    ("Z38.00", "Single liveborn infant, delivered vaginally"), ("K21.9", "GERD without esophagitis"),
)
# (LOINC code, name, UCUM unit, low, high, decimals)
LABS = (
    ("2345-7", "Glucose [Mass/volume] in Serum or Plasma", "mg/dL", 70, 99, 0),
    ("2951-2", "Sodium [Moles/volume] in Serum or Plasma", "mmol/L", 136, 145, 0),
    ("2823-3", "Potassium [Moles/volume] in Serum or Plasma", "mmol/L", 3.5, 5.1, 1),
    ("2075-0", "Chloride [Moles/volume] in Serum or Plasma", "mmol/L", 98, 107, 0),
    ("2028-9", "Carbon dioxide, total [Moles/volume] in Serum or Plasma", "mmol/L", 22, 29, 0),
    ("3094-0", "Urea nitrogen [Mass/volume] in Serum or Plasma", "mg/dL", 7, 20, 0),
    ("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL", 0.6, 1.3, 2),
    ("17861-6", "Calcium [Mass/volume] in Serum or Plasma", "mg/dL", 8.6, 10.3, 1),
    ("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", 12.0, 17.5, 1),
    ("4544-3", "Hematocrit [Volume Fraction] of Blood by Automated count", "%", 36, 50, 1),
    ("6690-2", "Leukocytes [#/volume] in Blood by Automated count", "10*3/uL", 4.5, 11.0, 1),
    ("789-8", "Erythrocytes [#/volume] in Blood by Automated count", "10*6/uL", 4.2, 5.9, 2),
    ("777-3", "Platelets [#/volume] in Blood by Automated count", "10*3/uL", 150, 400, 0),
    ("787-2", "MCV [Entitic volume] by Automated count", "fL", 80, 100, 1),
    ("785-6", "MCH [Entitic mass] by Automated count", "pg", 27, 33, 1),
    ("786-4", "MCHC [Mass/volume] by Automated count", "g/dL", 32, 36, 1),
    ("788-0", "Erythrocyte distribution width [Ratio] by Automated count", "%", 11.5, 14.5, 1),
    ("770-8", "Neutrophils/100 leukocytes in Blood by Automated count", "%", 40, 70, 1),
    ("736-9", "Lymphocytes/100 leukocytes in Blood by Automated count", "%", 20, 40, 1),
    ("5905-5", "Monocytes/100 leukocytes in Blood by Automated count", "%", 2, 8, 1),
    ("713-8", "Eosinophils/100 leukocytes in Blood by Automated count", "%", 1, 4, 1),
    ("706-2", "Basophils/100 leukocytes in Blood by Automated count", "%", 0, 1, 1),
    ("1742-6", "Alanine aminotransferase [Enzymatic activity/volume] in Serum or Plasma", "U/L", 7, 56, 0),
    ("1920-8", "Aspartate aminotransferase [Enzymatic activity/volume] in Serum or Plasma", "U/L", 10, 40, 0),
    ("6768-6", "Alkaline phosphatase [Enzymatic activity/volume] in Serum or Plasma", "U/L", 44, 147, 0),
    ("1975-2", "Bilirubin.total [Mass/volume] in Serum or Plasma", "mg/dL", 0.1, 1.2, 1),
    ("1751-7", "Albumin [Mass/volume] in Serum or Plasma", "g/dL", 3.4, 5.4, 1),
    ("2885-2", "Protein [Mass/volume] in Serum or Plasma", "g/dL", 6.0, 8.3, 1),
    ("2093-3", "Cholesterol [Mass/volume] in Serum or Plasma", "mg/dL", 125, 200, 0),
    ("2085-9", "Cholesterol in HDL [Mass/volume] in Serum or Plasma", "mg/dL", 40, 60, 0),
    ("13457-7", "Cholesterol in LDL [Mass/volume] in Serum or Plasma by calculation", "mg/dL", 0, 100, 0),
    ("2571-8", "Triglyceride [Mass/volume] in Serum or Plasma", "mg/dL", 0, 150, 0),
    ("3016-3", "Thyrotropin [Units/volume] in Serum or Plasma", "m[IU]/L", 0.4, 4.0, 2),
    ("3024-7", "Thyroxine (T4) free [Mass/volume] in Serum or Plasma", "ng/dL", 0.8, 1.8, 2),
    ("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "%", 4.0, 5.6, 1),
    ("1988-5", "C reactive protein [Mass/volume] in Serum or Plasma", "mg/L", 0, 10, 1),
    ("19123-9", "Magnesium [Mass/volume] in Serum or Plasma", "mg/dL", 1.7, 2.2, 1),
    ("2777-1", "Phosphate [Mass/volume] in Serum or Plasma", "mg/dL", 2.5, 4.5, 1),
    ("3084-1", "Urate [Mass/volume] in Serum or Plasma", "mg/dL", 3.5, 7.2, 1),
    ("3040-3", "Lipase [Enzymatic activity/volume] in Serum or Plasma", "U/L", 0, 160, 0),
    ("1798-8", "Amylase [Enzymatic activity/volume] in Serum or Plasma", "U/L", 30, 110, 0),
    ("6301-6", "INR in Platelet poor plasma by Coagulation assay", "{INR}", 0.8, 1.1, 2),
    ("5902-2", "Prothrombin time (PT)", "s", 11, 13.5, 1),
    ("3173-2", "aPTT in Blood by Coagulation assay", "s", 25, 35, 1),
    ("2276-4", "Ferritin [Mass/volume] in Serum or Plasma", "ng/mL", 24, 336, 0),
    ("2498-4", "Iron [Mass/volume] in Serum or Plasma", "ug/dL", 60, 170, 0),
    ("2132-9", "Cobalamin (Vitamin B12) [Mass/volume] in Serum or Plasma", "pg/mL", 200, 900, 0),
    ("2284-8", "Folate [Mass/volume] in Serum or Plasma", "ng/mL", 2.7, 17.0, 1),
    ("1989-3", "25-Hydroxyvitamin D3 [Mass/volume] in Serum or Plasma", "ng/mL", 20, 50, 0),
    ("2324-2", "Gamma glutamyl transferase [Enzymatic activity/volume] in Serum or Plasma", "U/L", 9, 48, 0),
    ("2532-0", "Lactate dehydrogenase [Enzymatic activity/volume] in Serum or Plasma", "U/L", 140, 280, 0),
    ("2157-6", "Creatine kinase [Enzymatic activity/volume] in Serum or Plasma", "U/L", 22, 198, 0),
    ("10839-9", "Troponin I.cardiac [Mass/volume] in Serum or Plasma", "ng/mL", 0, 0.04, 3),
    ("30934-4", "Natriuretic peptide B [Mass/volume] in Serum or Plasma", "pg/mL", 0, 100, 0),
    ("33914-3", "Glomerular filtration rate/1.73 sq M.predicted", "mL/min/{1.73_m2}", 60, 120, 0),
)
# (LOINC code, name, value type) for the textual OBX
TEXT_OBS = (
    ("5778-6", "Color of Urine", "ST"),
    ("5767-9", "Appearance of Urine", "ST"),
    ("8251-1", "Service comment", "TX"),
    ("48767-8", "Annotation comment [Interpretation] Narrative", "TX"),
    ("22637-3", "Pathology report final diagnosis Narrative", "TX"),
    ("11526-1", "Pathology study", "TX"),
)
# Free text that really contains delimiters and line breaks; esc() turns it
# into escape sequences, as a sending system would.
TEXTS = (
    "Specimen received at 08:15; hemolysis index 2+ | results may be affected",
    "Na/K ratio 28:1 ~ within expected range",
    "Verified by Dr. Smith & Dr. Jones",
    "Result corrected: previous value ^ was entered on wrong patient",
    "Report stored at \\\\labsrv01\\reports\\2024",
    "Moderate growth of E. coli (>10^5 CFU/mL)\nSusceptibility to follow",
    "Clinical history: fever & cough x 3 days\nRule out pneumonia\nSee prior study",
    "Interpretation: values consistent with iron-deficiency anemia\r\nSuggest ferritin & TIBC",
    "Straw colored",
    "Clear",
    "Slightly cloudy ~ trace sediment",
    "Critical value called to RN Miller at 09:42, read back confirmed",
    "Sample drawn from left arm | tourniquet < 1 min",
    "Final diagnosis:\nA. Colon, sigmoid, biopsy: tubular adenoma\nB. Margins free of dysplasia",
    "Repeat in 3-6 months; fasting required (>= 8 h)",
)
CRITICAL_NOTE = "Critical value called to RN Miller at 09:42, read back confirmed"
UTF8_TEXTS = (
    "Befund: Hämoglobin erniedrigt, Rücksprache mit Stationsärztin",
    "Échantillon hémolysé ~ résultat à interpréter avec prudence",
    "Prøven er modtaget kl. 08:15 & analyseret",
    "Kontrola za 3 měsíce; nalačno",
)
STREET_EXTRA = ("", "", "", "Apt 4B", "Suite 210", "Unit 3 & 4", "c/o Mary Ann", "Building C^Floor 2")
NOTE_TEXTS = TEXTS + ("Patient prefers morning appointments", "Interpreter required: Spanish")
PROCEDURES = (
    ("24323-8", "Comprehensive metabolic 2000 panel - Serum or Plasma"),
    ("58410-2", "CBC panel - Blood by Automated count"),
    ("57021-8", "CBC W Auto Differential panel - Blood"),
    ("24331-1", "Lipid 1996 panel - Serum or Plasma"),
    ("34714-6", "INR in Blood by Coagulation assay"),
)
INSURERS = (
    ("BCBS001", "Blue Cross Blue Shield"), ("AETNA01", "Aetna"), ("UHC0001", "UnitedHealthcare"),
    ("TK00001", "Techniker Krankenkasse"), ("AOK0001", "AOK Bayern"), ("MEDCARE", "Medicare Part A"),
)
TZ = ("-0500", "-0600", "-0700", "-0800", "-0400", "+0000", "+0100", "+0200")


def esc(text):
    """Escape free text for an HL7 leaf value, delimiters |^~\\& and escape \\."""
    if "\\" in text:
        text = text.replace("\\", "\\E\\")
    return (
        text.replace("|", "\\F\\")
        .replace("^", "\\S\\")
        .replace("&", "\\T\\")
        .replace("~", "\\R\\")
        .replace("\r\n", "\\X0D0A\\")
        .replace("\n", "\\.br\\")
    )


def m10_digit(num):
    """HL7 check digit scheme M10 (Luhn mod 10) of a string of digits."""
    total = 0
    for i, ch in enumerate(reversed(num)):
        d = int(ch)
        if i % 2 == 0:
            d = d * 2 - 9 if d * 2 > 9 else d * 2
        total += d
    return (10 - total % 10) % 10


class Gen:
    """Builds messages; all randomness comes from one seeded random.Random."""

    def __init__(self, seed):
        self.r = random.Random(seed)
        self.ctl = 0  # global control id counter, makes every id unique
        # Pre-escaped free-text pool, used in many places.
        self.texts = [esc(t) for t in TEXTS]
        self.utf8_texts = [esc(t) for t in UTF8_TEXTS]
        self.notes = [esc(t) for t in NOTE_TEXTS]
        self.family = [esc(n) for n in FAMILY]

    # --- small helpers ---------------------------------------------------
    def ts(self, year_lo=2023, year_hi=2024, sec=True):
        r = self.r
        s = "%04d%02d%02d%02d%02d" % (
            r.randint(year_lo, year_hi), r.randint(1, 12), r.randint(1, 28),
            r.randint(0, 23), r.randint(0, 59),
        )
        if sec:
            s += "%02d" % r.randint(0, 59)
        return s + r.choice(TZ)

    def date(self, lo, hi):
        r = self.r
        return "%04d%02d%02d" % (r.randint(lo, hi), r.randint(1, 12), r.randint(1, 28))

    def next_ctl(self, prefix):
        self.ctl += 1
        return "%s%010d" % (prefix, self.ctl)

    def name(self, utf8, female=None):
        r = self.r
        if female is None:
            female = r.random() < 0.5
        if utf8 and r.random() < 0.6:
            fam = r.choice(FAMILY_UTF8)
        else:
            fam = r.choice(self.family)
        if utf8 and r.random() < 0.6:
            giv = r.choice(GIVEN_UTF8)
        else:
            giv = r.choice(GIVEN_F if female else GIVEN_M)
        mid = r.choice(GIVEN_F if female else GIVEN_M)[0] if r.random() < 0.6 else ""
        return fam, giv, mid

    def xpn_list(self, utf8, female, fam, giv, mid):
        """PID-5: legal name plus 1-3 more (alias, maiden, display)."""
        r = self.r
        out = ["%s^%s^%s^%s^%s^^L" % (fam, giv, mid, r.choice(("", "", "Jr", "III")),
                                      r.choice(("", "Dr", "Mr" if not female else "Mrs")))]
        for _ in range(r.randint(1, 3)):
            kind = r.choice(("A", "M", "D", "B", "N"))
            ofam = fam if kind in ("D", "N") else self.name(utf8, female)[0]
            out.append("%s^%s^%s^^^^%s" % (ofam, giv if kind != "N" else giv[:1], mid, kind))
        return "~".join(out)

    def cx_list(self, fac):
        """PID-3: 3-5 identifiers with HD assigning authority and type code."""
        r = self.r
        app, facname, oid = fac
        out = []
        types = r.sample(ID_TYPES, r.randint(3, 5))
        for i, t in enumerate(types):
            if t == "MR":
                auth = "%s&%s&ISO" % (facname, oid)
            elif t == "SS":
                auth = "SSA&2.16.840.1.113883.4.1&ISO"
            elif t == "DL":
                auth = "DMV&2.16.840.1.113883.4.3.%d&ISO" % r.randint(1, 56)
            else:
                auth = "%s&%s.%d&ISO" % (app, oid, i + 1)
            num = "%0*d" % (r.choice((7, 8, 9, 10)), r.randint(0, 10 ** 9))
            check = str(m10_digit(num)) if r.random() < 0.3 else ""
            scheme = "M10" if check else ""
            out.append("%s^%s^%s^%s^%s^%s" % (num, check, scheme, auth, t, facname if r.random() < 0.5 else ""))
        return "~".join(out)

    def xad(self, utf8, kind):
        r = self.r
        if utf8 and r.random() < 0.5:
            street = r.choice(STREETS_UTF8)
            city, st, zipc, ctry = r.choice(CITIES_UTF8)
        else:
            street = r.choice(STREETS)
            city, st, zipc, ctry = r.choice(CITIES)
        extra = esc(r.choice(STREET_EXTRA))
        return "%d %s^%s^%s^%s^%s^%s^%s" % (r.randint(1, 9999), esc(street), extra, city, st, zipc, ctry, kind)

    def xtn_list(self, n, giv, fam):
        r = self.r
        out = []
        for i in range(n):
            if i == n - 1 and r.random() < 0.5:
                out.append("^NET^Internet^%s.%s%d@example.org" % (giv.lower(), fam.lower(), r.randint(1, 99)))
            else:
                area, local = r.randint(200, 989), r.randint(2000000, 9999999)
                use = ("PRN", "ORN", "WPN", "VHN", "EMR")[i % 5]
                equip = ("PH", "CP", "FX")[r.randint(0, 2)] if i else "PH"
                out.append("(%d)%03d-%04d^%s^%s^^1^%d^%d%s" % (
                    area, local // 10000, local % 10000, use, equip, area, local,
                    "^%d" % r.randint(100, 999) if use == "WPN" else ""))
        return "~".join(out)

    def xcn(self):
        r = self.r
        fam, giv, mid = self.name(False)
        return "%d^%s^%s^%s^^Dr^MD^^NPI&2.16.840.1.113883.4.6&ISO^L^^^NPI" % (
            r.randint(1000000000, 1999999999), fam, giv, mid)

    def msh(self, fac, rcv, mtype, utf8, ctl_prefix):
        ts = self.ts()
        return "MSH|^~\\&|%s|%s^%s^ISO|%s|%s|%s||%s|%s|P|2.5.1|||AL|NE|%s%s" % (
            fac[0], fac[1], fac[2], rcv[0], rcv[1], ts, mtype, self.next_ctl(ctl_prefix),
            "DEU" if fac[0] == "SAP_ISH" else "USA", "|UNICODE UTF-8" if utf8 else "")

    def pid(self, fac, utf8):
        r = self.r
        female = r.random() < 0.5
        fam, giv, mid = self.name(utf8, female)
        mother = self.name(utf8, True)
        addrs = [self.xad(utf8, k) for k in ("H", "M", "B")[: r.randint(2, 3)]]
        return "PID|1||%s||%s|%s^%s|%s|%s||%s|%s||%s|%s|%s|%s|%s|%s^^^%s^AN|%03d-%02d-%04d|||%s||%s|%s" % (
            self.cx_list(fac),
            self.xpn_list(utf8, female, fam, giv, mid),
            mother[0], mother[1],
            self.date(1930, 2021) + ("%02d%02d" % (r.randint(0, 23), r.randint(0, 59)) if r.random() < 0.3 else ""),
            "F" if female else "M",
            r.choice(("2106-3^White^CDCREC", "2054-5^Black or African American^CDCREC", "2028-9^Asian^CDCREC",
                      "2131-1^Other Race^CDCREC~2106-3^White^CDCREC")),
            "~".join(addrs),
            self.xtn_list(r.randint(2, 4), giv, fam),
            self.xtn_list(1, giv, fam) if r.random() < 0.5 else "",
            r.choice(("en^English^ISO639", "de^German^ISO639", "es^Spanish^ISO639", "fr^French^ISO639")),
            r.choice(("M^Married^HL70002", "S^Single^HL70002", "D^Divorced^HL70002", "W^Widowed^HL70002")),
            r.choice(("CHR^Christian^HL70006", "CAT^Roman Catholic^HL70006", "NOE^No preference^HL70006", "")),
            r.randint(10 ** 8, 10 ** 9 - 1), fac[1],
            r.randint(100, 899), r.randint(1, 99), r.randint(1, 9999),
            r.choice(("H^Hispanic or Latino^HL70189", "N^Not Hispanic or Latino^HL70189", "U^Unknown^HL70189")),
            r.choice(("N", "Y")), r.choice(("1", "2", "")),
        )

    def pv1(self, fac, patient_class=None):
        r = self.r
        pc = patient_class or r.choice(("I", "O", "E", "P"))
        attending = "~".join(self.xcn() for _ in range(r.randint(2, 4)))
        return "PV1|1|%s|%s^%d^%s^%s^^^%s||||%s|%s|%s|%s||||%s|||%s|%s|%d^^^%s^VN|||||||||||||||||||%s||||||%s|%s" % (
            pc, r.choice(("4W", "ICU", "CCU", "ED", "ONC", "PED", "MAT", "3N")), r.randint(100, 499),
            r.choice("ABCD"), fac[1], fac[1],
            attending, self.xcn(), self.xcn() if r.random() < 0.6 else "",
            r.choice(("MED", "SUR", "CAR", "PUL", "ONC", "OBS")),
            r.choice(("1", "2", "7", "")),
            self.xcn(), r.choice(("", "VIP", "")),
            r.randint(10 ** 7, 10 ** 8 - 1), fac[1],
            r.choice(("", "01")), self.ts(), self.ts() if r.random() < 0.3 else "",
        )

    # --- messages ----------------------------------------------------------
    def adt(self, fac, rcv, utf8):
        r = self.r
        ev = r.choice(("A01", "A01", "A04", "A08", "A08"))
        segs = [
            self.msh(fac, rcv, "ADT^%s^ADT_A01" % ev, utf8, "ADT"),
            "EVN|%s|%s|||%s^%s^%s|%s" % (ev, self.ts(), "U%05d" % r.randint(1, 99999),
                                         *self.name(False)[:2], self.ts()),
            self.pid(fac, utf8),
            "PD1|||%s^^%d|%s" % (fac[1], r.randint(1000, 9999), self.xcn()),
        ]
        for i in range(r.randint(1, 4)):
            fam, giv, mid = self.name(utf8)
            rel = r.choice(RELATIONS)
            segs.append("NK1|%d|%s^%s^%s|%s^%s^HL70063|%s|%s|%s|%s^%s^HL70131|%s" % (
                i + 1, fam, giv, mid, rel[0], rel[1], self.xad(utf8, "H"),
                self.xtn_list(r.randint(1, 3), giv, fam), self.xtn_list(1, giv, fam) if r.random() < 0.4 else "",
                "C" if rel[0] == "EMC" else "N", "Next-of-Kin" if rel[0] != "EMC" else "Emergency Contact",
                self.date(2020, 2024)))
        segs.append(self.pv1(fac, "I" if ev == "A01" else None))
        if r.random() < 0.7:
            segs.append("PV2|||%s^%s^I10||||||%s|%d" % (
                *r.choice(DIAGNOSES), self.date(2024, 2024), r.randint(1, 14)))
        if r.random() < 0.6:
            segs.append("OBX|1|NM|8302-2^Body height^LN||%d|cm^cm^UCUM|||||F|||%s" % (r.randint(50, 200), self.ts()))
            segs.append("OBX|2|NM|29463-7^Body weight^LN||%.1f|kg^kg^UCUM|||||F|||%s" % (r.uniform(3, 150), self.ts()))
        for i, a in enumerate(r.sample(ALLERGIES, r.randint(0, 4))):
            segs.append("AL1|%d|%s^%s^HL70127|%s|%s|%s|%s" % (
                i + 1, a[0], {"DA": "Drug allergy", "FA": "Food allergy", "EA": "Environmental allergy",
                              "MA": "Miscellaneous allergy"}[a[0]], a[1], a[2], a[3], self.date(1990, 2024)))
        for i, d in enumerate(r.sample(DIAGNOSES, r.randint(1, 6))):
            segs.append("DG1|%d||%s^%s^I10||%s|%s|||||||||%d|%s" % (
                i + 1, d[0], esc(d[1]), self.ts(), r.choice(("A", "W", "F")), i + 1, self.xcn()))
        if r.random() < 0.5:
            fam, giv, mid = self.name(utf8)
            segs.append("GT1|1||%s^%s^%s||%s|%s||%s|%s|SE^Self^HL70063" % (
                fam, giv, mid, self.xad(utf8, "H"), self.xtn_list(2, giv, fam),
                self.date(1940, 2000), r.choice("MF")))
        if r.random() < 0.6:
            ins = r.choice(INSURERS)
            segs.append("IN1|1|%s^%s|%s|%s|%s||%s|GRP%05d|%s||||%s|%s|||%s^%s|SEL^Self^HL70063||%s" % (
                r.choice(("PPO", "HMO", "GKV", "MCR")), r.choice(("Gold", "Silver", "Standard")), ins[0], esc(ins[1]),
                self.xad(False, "B"), self.xtn_list(1, "i", "x"), r.randint(1, 99999), esc(ins[1]) + " Group",
                self.date(2020, 2024), self.date(2025, 2026), *self.name(utf8)[:2], self.xad(utf8, "H")))
        return segs

    def oru(self, fac, rcv, utf8):
        r = self.r
        order = "%s%08d" % (fac[0][:3], r.randint(0, 10 ** 8 - 1))
        filler = "LAB%09d" % r.randint(0, 10 ** 9 - 1)
        proc = r.choice(PROCEDURES)
        collected = self.ts()
        orderer = self.xcn()
        segs = [
            self.msh(fac, rcv, "ORU^R01^ORU_R01", utf8, "ORU"),
            self.pid(fac, utf8),
            self.pv1(fac),
            "ORC|RE|%s^%s|%s^LAB||CM||||%s|||%s" % (order, fac[0], filler, self.ts(), orderer),
            "OBR|1|%s^%s|%s^LAB|%s^%s^LN|||%s|||||||||%s||||||%s|||F" % (
                order, fac[0], filler, proc[0], proc[1], collected, orderer, self.ts()),
        ]
        if r.random() < 0.3:
            segs.append("NTE|1|L|%s" % r.choice(self.notes))
        ntext = r.randint(2, 6)
        labs = r.sample(LABS, 50 - ntext)
        texts = [r.choice(TEXT_OBS) for _ in range(ntext)]
        kinds = ["N"] * len(labs) + ["T"] * ntext
        r.shuffle(kinds)
        li = ti = 0
        for n, kind in enumerate(kinds, 1):
            when = collected
            if kind == "N":
                code, name, unit, lo, hi, dec = labs[li]
                li += 1
                span = (hi - lo) or 1.0
                v = r.uniform(lo - 0.25 * span, hi + 0.25 * span)
                v = round(max(v, 0.0), dec)
                flag = "L" if v < lo else ("H" if v > hi else "N")
                if flag != "N" and r.random() < 0.05:
                    flag = "LL" if flag == "L" else "HH"
                segs.append("OBX|%d|NM|%s^%s^LN||%.*f|%s^%s^UCUM|%.*f-%.*f|%s|||F|||%s|%s^%s^LAB||%s" % (
                    n, code, name, dec, v, unit, unit, dec, lo, dec, hi, flag, when,
                    fac[1], "Central Laboratory", self.ts()))
                if flag in ("LL", "HH"):
                    segs.append("NTE|1|L|%s" % CRITICAL_NOTE)
            else:
                code, name, vt = texts[ti]
                ti += 1
                if utf8 and r.random() < 0.5:
                    value = r.choice(self.utf8_texts)
                else:
                    value = r.choice(self.texts)
                segs.append("OBX|%d|%s|%s^%s^LN||%s||||||F|||%s|%s^%s^LAB" % (
                    n, vt, code, name, value, when, fac[1], "Central Laboratory"))
        return segs

    def message(self):
        r = self.r
        fac = r.choice(FACILITIES)
        rcv = r.choice(RECEIVERS)
        utf8 = r.random() < 0.15
        if r.random() < 0.6:
            return self.adt(fac, rcv, utf8)
        return self.oru(fac, rcv, utf8)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size-mb", type=float, default=110.0, help="target size in MB (10^6 bytes), default 110")
    ap.add_argument("--out", default=DEFAULT_OUT, help="output path, default bench/out/corpus.hl7")
    ap.add_argument("--seed", type=int, default=20240314, help="random seed (default fixed)")
    args = ap.parse_args(argv)

    target = int(args.size_mb * 1_000_000)
    out_dir = os.path.dirname(os.path.abspath(args.out))
    os.makedirs(out_dir, exist_ok=True)
    tmp = args.out + ".tmp"

    t0 = time.perf_counter()
    g = Gen(args.seed)
    r = g.r
    total = 0
    n_msgs = n_segs = n_env = n_batched = n_files = n_batches = n_utf8 = 0
    counts = {}
    chunk = []
    chunk_bytes = 0

    def emit(text):
        nonlocal total, chunk_bytes
        b = text.encode("utf-8")
        chunk.append(b)
        total += len(b)
        chunk_bytes += len(b)

    def one_message():
        nonlocal n_msgs, n_segs, n_utf8
        segs = g.message()
        n_msgs += 1
        n_segs += len(segs)
        kind = segs[0].split("|", 9)[8].rsplit("^", 1)[0]
        counts[kind] = counts.get(kind, 0) + 1
        if segs[0].endswith("UNICODE UTF-8"):
            n_utf8 += 1
        # Segments end in CR; then "\n" (-> CRLF) or "\r\n" (-> empty line).
        emit("\r".join(segs) + ("\r\n" if r.random() < 0.8 else "\r\r\n"))

    with open(tmp, "wb") as f:
        while total < target:
            if n_batched < 0.10 * n_msgs and r.random() < 0.05:
                # File envelope with 1-3 batches of 3-12 messages each.
                fac = r.choice(FACILITIES)
                rcv = r.choice(RECEIVERS)
                nb = r.randint(1, 3)
                emit("FHS|^~\\&|%s|%s|%s|%s|%s||%s_%d.hl7||%s\r" % (
                    fac[0], fac[1], rcv[0], rcv[1], g.ts(), fac[0].lower(), g.ctl, g.next_ctl("F")))
                n_env += 1
                for _ in range(nb):
                    k = r.randint(3, 12)
                    emit("BHS|^~\\&|%s|%s|%s|%s|%s||%s|Nightly export|%s\r" % (
                        fac[0], fac[1], rcv[0], rcv[1], g.ts(), "BATCH", g.next_ctl("B")))
                    for _ in range(k):
                        one_message()
                    emit("BTS|%d\r" % k)
                    n_env += 2
                    n_batched += k
                emit("FTS|%d\r\n" % nb)
                n_env += 1
                n_files += 1
                n_batches += nb
            else:
                one_message()
            if chunk_bytes >= 1 << 20:
                f.write(b"".join(chunk))
                chunk.clear()
                chunk_bytes = 0
        f.write(b"".join(chunk))
    os.replace(tmp, args.out)
    dt = time.perf_counter() - t0

    print("corpus    %s" % args.out)
    print("bytes     %d (%.1f MB)" % (total, total / 1e6))
    print("messages  %d (%s)" % (n_msgs, ", ".join("%s %d" % kv for kv in sorted(counts.items()))))
    print("segments  %d in messages, %d FHS/BHS/BTS/FTS" % (n_segs, n_env))
    print("envelopes %d files, %d batches, %d messages batched (%.1f%%)" % (
        n_files, n_batches, n_batched, 100.0 * n_batched / max(n_msgs, 1)))
    print("utf-8     %d messages declare UNICODE UTF-8" % n_utf8)
    print("seconds   %.1f" % dt)
    return 0


if __name__ == "__main__":
    sys.exit(main())
