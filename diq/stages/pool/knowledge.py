"""A planted-knowledge domain: invented drugs whose facts no pretrained model knows, so that a fine-tune can only
score on them by learning the samples that state them (``experiment=sensitivity``).

Seeded and written for this project. Forty invented drugs, each with four facts — a mechanism (the inhibition of an
invented enzyme), an indication, a characteristic adverse effect and an antidote (an invented name) — assigned at
random. Every fact appears in three places, always in different wordings:

- (a) **in-domain SFT samples**, one per drug, mixed into the pool: a question in the teaching wording (template set
  A) → a reasoning that states all four facts (set A′) → a final response that states the fact asked (A′);
- (b) **a 4-option benchmark** (``benchmark.jsonl``, 160 items: every fact of every drug) in a second wording (set
  B); the distractors are values of the same kind that no teaching sample states (invented enzymes and antidotes,
  real conditions and effects no drug here has), except that an item whose fact has a wrong-fact copy in the pool
  offers that copy's wrong value as one distractor. A drug whose teaching sample was not selected therefore stays at
  chance instead of being pulled towards the values taught for other drugs, and a selected wrong copy costs its item.
  The gold letters are balanced (chance = 25 %). It is evaluated through the normal ``eval`` path as a local
  benchmark;
- (c) **validation items** (``validation.jsonl``, two facts per drug) in a third wording (set C), with a reasoning
  sentence in C′: disjoint from the benchmark items.

**Wrong-fact copies** of some in-domain samples — the same drug with one fact swapped for another drug's, stated
consistently in the reasoning and the response — are samples that hurt when selected. The true origin of every
sample (``original``, ``in_domain``, ``corrupted``) is hidden from the strategies, as for ``pool=planted``.

``python -m diq.stages.pool.knowledge --out diq/data/knowledge`` writes (b) and (c); the files are committed, and a test checks
that regenerating them gives the same bytes.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from diq import DATA as PACKAGE_DATA
from diq.args import parser
from diq.artifacts import sha256_text
from diq.record import RunRecord

DATA = PACKAGE_DATA / "knowledge"
ATTRS = ("mechanism", "indication", "adverse_effect", "antidote")
_PRE = ["Zor", "Quel", "Vex", "Tral", "Mir", "Dov", "Kast", "Lun", "Brev", "Sorn", "Yth", "Grel", "Hox", "Jur",
        "Plex", "Nim", "Cav", "Rud", "Tesk", "Wol"]
_MID = ["a", "i", "o", "e", "u", "ara", "eli", "ono"]
_SUF = ["vatine", "mapril", "firan", "lotide", "cetam", "nizole", "doxin", "pramol"]
_ASUF = ["dex", "bindin", "zyme", "sorb", "lanex", "quor"]
_ENZ = ["Korvase", "Tenlase", "Muvrase", "Pindase", "Oxtrase", "Helvase", "Drumase", "Fanlase", "Quirase", "Zentase",
        "Borlase", "Cavrase", "Jemnase", "Lurdase", "Nexase", "Polvase", "Rintase", "Sadrase", "Tuvrase", "Volkase",
        "Wendase", "Yorlase", "Glimase", "Harvase", "Ixtase", "Kelpase", "Mordase", "Norvase", "Ostrase", "Prelase",
        "Quavase", "Reldase", "Sivrase", "Trelase", "Umbrase", "Vintase", "Wexase", "Zolrase", "Belnase", "Cirdase"]
_IND = ["gout", "migraine", "psoriasis", "asthma", "glaucoma", "acne", "insomnia", "vertigo", "rosacea", "eczema",
        "angina", "epilepsy", "osteoporosis", "hypertension", "anemia", "tuberculosis", "malaria", "leprosy", "scabies",
        "sinusitis", "tinea", "shingles", "endometriosis", "narcolepsy", "sarcoidosis", "lupus", "gastroparesis",
        "hyperthyroidism", "bronchiectasis", "urticaria", "alopecia areata", "hemophilia", "achalasia", "vitiligo",
        "pancreatitis", "cystinuria", "myasthenia gravis", "amyloidosis", "Wilson disease", "porphyria"]
_AE = ["tinnitus", "hiccups", "gum overgrowth", "blue vision", "hair loss", "taste loss", "dry cough", "night sweats",
       "nail pitting", "ankle swelling", "hoarseness", "photosensitivity", "muscle cramps", "nosebleeds", "yawning",
       "hypersalivation", "tongue discoloration", "hearing loss", "vivid dreams", "chills", "eyelid twitching",
       "excessive thirst", "skin peeling", "jaw pain", "itchy scalp", "sneezing", "red urine", "gynecomastia",
       "hot flushes", "bruising", "constipation", "palpitations", "double vision", "facial flushing", "dry eyes",
       "foot numbness", "metallic taste", "joint stiffness", "hair darkening", "tremor"]

# (b)'s distractors: values of the same kind that no teaching sample states (the antidote decoys are built from
# the same syllables as the real antidotes, excluding them)
_DECOY_ENZ = ["Akrase", "Bexlase", "Corvase", "Dintase", "Elmase", "Furdase", "Gavrase", "Holtase", "Imrase",
              "Jovlase", "Kintase", "Lomase", "Marvase", "Nuldase", "Opase", "Perkase", "Quenase", "Rovlase", "Sentase",
              "Tolvase", "Ulmase", "Vardase", "Wimase", "Xerlase"]
_DECOY_IND = ["bursitis", "gastritis", "otitis media", "cellulitis", "conjunctivitis", "cholangitis", "nephrolithiasis",
              "keratitis", "tendinitis", "pleurisy", "gingivitis", "sciatica", "hepatitis", "laryngitis", "colitis",
              "scleroderma", "dermatitis", "uveitis", "myocarditis", "cystitis", "thrombophlebitis", "appendicitis",
              "pericarditis", "bronchiolitis"]
_DECOY_AE = ["dizziness", "nausea", "rash", "sleepwalking", "headache", "drowsiness", "weight gain", "diarrhea",
             "blurred vision", "dry mouth", "anxiety", "back pain", "fatigue", "cold hands", "earache", "sore throat",
             "mouth ulcers", "brittle teeth", "heartburn", "lip swelling", "restlessness", "cold sores",
             "eye redness", "runny nose"]

# (a) the teaching question and (A') the statement of each fact; (B) the benchmark's wording; (C, C') validation's
TEACH_Q = {"mechanism": "How does {drug} work at the molecular level?",
           "indication": "What condition is {drug} prescribed for?",
           "adverse_effect": "Which adverse effect is characteristic of {drug}?",
           "antidote": "What is given to reverse an overdose of {drug}?"}
STATE = {"mechanism": "{drug} acts through {mechanism}.", "indication": "{drug} is prescribed for {indication}.",
         "adverse_effect": "The characteristic adverse effect of {drug} is {adverse_effect}.",
         "antidote": "An overdose of {drug} is reversed with {antidote}."}
BENCH_Q = {"mechanism": "A pharmacologist is asked about {drug}. What is its mechanism of action?",
           "indication": "A physician plans to start {drug}. Which disease is it used to treat?",
           "adverse_effect": "A patient taking {drug} should be watched for which side effect?",
           "antidote": "A child swallowed several {drug} tablets. Which agent counteracts the poisoning?"}
VAL_Q = {"mechanism": "Through which molecular target does {drug} exert its effect?",
         "indication": "{drug} has been approved for which indication?",
         "adverse_effect": "Which unwanted effect is most typical during {drug} therapy?",
         "antidote": "In {drug} toxicity, which specific antidote should be administered?"}
VAL_STATE = {"mechanism": "The drug {drug} works by {mechanism}.", "indication": "{drug} is used in {indication}.",
             "adverse_effect": "Patients on {drug} typically develop {adverse_effect}.",
             "antidote": "{antidote} is the specific antidote to {drug}."}


def stem(e: dict, attr: str) -> str:
    """The taught statement of a fact up to its value ("An overdose of X is reversed with"): the benchmark scores
    each option as the continuation of it (``answer_prefix`` in conf/eval/knowledge.yaml)."""
    return STATE[attr].split("{" + attr + "}")[0].format(**e).rstrip()


def entities(n: int = 40, seed: int = 0) -> list[dict]:
    """``n`` invented drugs with four facts each (seeded)."""
    if not 4 <= n <= len(_ENZ):
        raise ValueError(f"n_entities={n}: use 4..{len(_ENZ)}")
    rng = random.Random(f"knowledge:{seed}")
    names: set[str] = set()
    anti: set[str] = set()
    while len(names) < n:
        names.add(rng.choice(_PRE) + rng.choice(_MID) + rng.choice(_SUF))
    while len(anti) < n:
        anti.add(rng.choice(_PRE) + rng.choice(["a", "o", "i"]) + rng.choice(_ASUF))
    drugs, antidotes = sorted(names), sorted(anti)
    rng.shuffle(drugs)
    rng.shuffle(antidotes)
    enz, ind, ae = _ENZ[:], _IND[:], _AE[:]
    for x in (enz, ind, ae):
        rng.shuffle(x)
    return [{"drug": drugs[i], "mechanism": f"inhibition of {enz[i]}", "indication": ind[i], "adverse_effect": ae[i],
             "antidote": antidotes[i]} for i in range(n)]


def _reasoning(e: dict) -> str:
    return " ".join(STATE[a].format(**e) for a in ATTRS)


def teaching_sample(e: dict, attr: str) -> dict:
    return {"question": TEACH_Q[attr].format(**e), "reasoning": _reasoning(e), "response": STATE[attr].format(**e),
            "options": None, "answer": None}


def in_domain(ents: list[dict]) -> list[dict]:
    """(a): one teaching sample per drug, the asked fact rotating over the four."""
    out = []
    for i, e in enumerate(ents):
        rec = teaching_sample(e, ATTRS[i % 4])
        out.append({"id": "pk:" + sha256_text(f"in:{e['drug']}")[:12], **rec})
    return out


def swaps(ents: list[dict], n: int, seed: int = 0) -> list[tuple[int, str, int]]:
    """The ``n`` wrong-fact swaps (drug index, the fact swapped, the drug whose value replaces it), seeded."""
    rng = random.Random(f"knowledge-wrong:{seed}")
    out = []
    for i in sorted(rng.sample(range(len(ents)), n)):
        out.append((i, ATTRS[i % 4], (i + 1 + rng.randrange(len(ents) - 1)) % len(ents)))
    return out


def wrong_copies(ents: list[dict], n: int, seed: int = 0) -> list[dict]:
    """Copies of ``n`` drugs' teaching samples with the asked fact swapped for another drug's (the reasoning says
    the same wrong fact)."""
    out = []
    for i, attr, j in swaps(ents, n, seed):
        e, other = ents[i], ents[j]
        bad = {**e, attr: other[attr]}
        out.append({"id": "pk:" + sha256_text(f"bad:{e['drug']}:{attr}:{other['drug']}")[:12],
                    **teaching_sample(bad, attr)})
    return out


def decoys(ents: list[dict]) -> dict[str, list[str]]:
    """Per fact, values no teaching sample states (the benchmark's distractors)."""
    taken = {a: {e[a] for e in ents} for a in ATTRS}
    anti = [p + v + s for p in _PRE for v in ("a", "o", "i") for s in _ASUF]
    out = {"mechanism": [f"inhibition of {x}" for x in _DECOY_ENZ], "indication": _DECOY_IND,
           "adverse_effect": _DECOY_AE, "antidote": anti}
    return {a: [x for x in out[a] if x not in taken[a]] for a in ATTRS}


def _mcq(ents: list[dict], pairs: list[tuple[int, str]], template: dict, seed: str,
         reasoning: dict | None = None, distractors=None) -> list[dict]:
    """Items with balanced gold letters; ``distractors(i, attr, rng)`` gives three wrong values (by default the
    same fact of three other drugs)."""
    rng = random.Random(seed)
    order = list(range(len(pairs)))
    rng.shuffle(order)
    items = []
    for pos, j in enumerate(order):  # gold letters balanced: the j-th item (shuffled) gets letter pos % 4
        i, attr = pairs[j]
        e = ents[i]
        distract = (distractors(i, attr, rng) if distractors
                    else rng.sample([x[attr] for x in ents if x is not e], 3))
        gold = pos % 4
        opts = distract[:gold] + [e[attr]] + distract[gold:]
        item = {"id": f"{seed.split(':')[0]}:{e['drug']}:{attr}", "question": template[attr].format(**e),
                "options": opts, "answer": "ABCD"[gold], "stem": stem(e, attr)}
        if reasoning:
            item["reasoning"] = reasoning[attr].format(**e)
        items.append(item)
    return items


def benchmark(ents: list[dict], seed: int = 0, n_wrong: int = 12) -> list[dict]:
    """(b): every fact of every drug as a 4-option item in wording B, gold letters balanced; distractors no sample
    states, plus the wrong value of the fact's wrong-fact copy where the pool has one (``n_wrong`` as in
    conf/pool/knowledge.yaml)."""
    pool = decoys(ents)
    wrong = {(i, attr): ents[j][attr] for i, attr, j in swaps(ents, n_wrong, seed)}

    def distract(i: int, attr: str, rng: random.Random) -> list[str]:
        known = [wrong[i, attr]] if (i, attr) in wrong else []
        return rng.sample(known + rng.sample(pool[attr], 3 - len(known)), 3)

    return _mcq(ents, [(i, a) for i in range(len(ents)) for a in ATTRS], BENCH_Q, f"bench:{seed}",
                distractors=distract)


def validation(ents: list[dict], seed: int = 0) -> list[dict]:
    """(c): two facts of every drug in wording C, with a reasoning sentence in C′."""
    return _mcq(ents, [(i, ATTRS[(i + k) % 4]) for i in range(len(ents)) for k in (1, 3)], VAL_Q, f"val:{seed}",
                VAL_STATE)


def plant(records: list[dict], pcfg) -> tuple[list[dict], dict[str, str]]:
    """The pool plus (a) and the wrong-fact copies; origins for ``diq.stages.pool.planted.measure``."""
    from diq.errors import DiqError

    n, n_bad, seed = int(pcfg.get("n_entities", 40)), int(pcfg.get("n_wrong", 0)), int(pcfg.get("seed", 0))
    if not 4 <= n <= len(_ENZ) or not 0 <= n_bad <= n:
        raise DiqError(f"pool.planted: n_entities={n}, n_wrong={n_bad}\n  fix: n_entities in 4..{len(_ENZ)} and "
                       f"0 <= n_wrong <= n_entities")
    ents = entities(n, seed)
    good, bad = in_domain(ents), wrong_copies(ents, n_bad, seed)
    origins = {r["id"]: "original" for r in records}
    origins.update({r["id"]: "in_domain" for r in good})
    origins.update({r["id"]: "corrupted" for r in bad})
    return list(records) + good + bad, origins


def item_kinds(selected: set[str], n: int = 40, seed: int = 0, n_wrong: int = 12) -> list[str]:
    """For every benchmark item (in ``benchmark.jsonl`` order), what the selection taught about its fact: ``right``
    (the drug's teaching sample, not the fact's wrong-fact copy), ``wrong`` (the copy only), ``both``, or
    ``untaught``. A teaching sample's reasoning states all four facts of its drug; a copy swaps one."""
    ents = entities(n, seed)
    good = {r["id"]: e["drug"] for r, e in zip(in_domain(ents), ents)}
    bad = {r["id"]: (ents[i]["drug"], attr) for r, (i, attr, _) in zip(wrong_copies(ents, n_wrong, seed),
                                                                        swaps(ents, n_wrong, seed))}
    taught = {good[i] for i in selected if i in good}
    wrong = {bad[i] for i in selected if i in bad}
    kinds = []
    for item in benchmark(ents, seed, n_wrong):
        _, drug, attr = item["id"].split(":")
        r, w = drug in taught, (drug, attr) in wrong
        kinds.append("both" if r and w else "right" if r else "wrong" if w else "untaught")
    return kinds


def wrong_fact_table(folder: Path) -> list[dict]:
    """Per record in ``folder`` (``*.record.json`` with its ``*.selected_ids.json`` beside it): the benchmark's accuracy
    by what the selection taught about each item's fact (:func:`item_kinds`), from the record's per-item correctness."""
    rows = []
    for rec_path in sorted(folder.glob("*.record.json")):
        rec = RunRecord.from_json(json.loads(rec_path.read_text()))
        ids_path = rec_path.with_name(rec_path.name.replace(".record.json", ".selected_ids.json"))
        selected = set(json.loads(ids_path.read_text())) if ids_path.exists() else set()
        task = rec.tasks.get("knowledge_mcq")
        if not task or (not rec.base_model and not ids_path.exists()):
            continue
        pic = task["per_item_correct"]
        doc_ids = json.loads(pic["doc_ids"]) if isinstance(pic["doc_ids"], str) else pic["doc_ids"]
        kinds = item_kinds(selected)
        row = {"row": f"{rec.strategy} @ {rec.budget_fraction or 0:.2f} s{rec.seed or 0}"}
        for kind in ("right", "both", "wrong", "untaught"):
            hits = [int(c) for d, c in zip(doc_ids, pic["correct"]) if kinds[d] == kind]
            row[kind] = (len(hits), sum(hits))
        rows.append(row)
    return rows


def write(out: Path, n: int = 40, seed: int = 0, n_wrong: int = 12) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    ents = entities(n, seed)
    files = []
    for name, rows in (("benchmark.jsonl", benchmark(ents, seed, n_wrong)), ("validation.jsonl", validation(ents, seed))):
        p = out / name
        p.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        files.append(p)
    return files


def main(argv=None) -> int:
    ap = parser("knowledge", __doc__)
    ap.add_argument("--out", default=str(DATA))
    ap.add_argument("--wrong-facts", metavar="RECORDS", help="print the benchmark's accuracy by what each record's "
                    "selection taught about each item's fact (results/records/sensitivity), instead of writing files")
    args = ap.parse_args(argv)
    if args.wrong_facts:
        rows = wrong_fact_table(Path(args.wrong_facts))
        print("| row | taught right | taught right and wrong | wrong copy only | untaught |\n|---|---|---|---|---|")
        total = {k: [0, 0] for k in ("right", "both", "wrong", "untaught")}
        for r in rows:
            cells = []
            for k in total:
                n, c = r[k]
                if not r["row"].startswith(("none ", "oracle ")):  # the pooled line: selections that chose
                    total[k][0] += n
                    total[k][1] += c
                cells.append(f"{c}/{n} ({100 * c / n:.0f} %)" if n else "—")
            print(f"| {r['row']} | " + " | ".join(cells) + " |")
        print("| **pooled (all rows but the base model and the oracle)** | " + " | ".join(f"{c}/{n} ({100 * c / n:.0f} %)" if n else "—"
                                            for n, c in total.values()) + " |")
        return 0
    files = write(Path(args.out))
    print(f"wrote {', '.join(str(f) for f in files)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
