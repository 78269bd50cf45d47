"""Hub-shaped fixtures: a few hand-written items in the exact schema of every hub dataset the paper setting reads.

``python -m diq.tools.fixtures --out diq/data/hub_fixtures`` writes them (committed; a test checks that regenerating
gives the same bytes). With ``hub_fixtures=<dir>`` (or ``DIQ_HUB_FIXTURES``) a run reads every hub dataset from
``<dir>/<owner>/<name>/<config or _>/<split>.jsonl`` instead of the Hub (``diq.engine.hub.load_dataset``), and lm-eval's
hub tasks are pointed at the same files (``diq.engine.hub.redirect_task``). The items are written for this project from
the facts below; none is copied from a benchmark. The medical-o1 pool fixture reuses the bundled demo records
(training data, diq/data/SOURCES.md), in the hub dataset's own three columns.

Schemas (field names, splits and answer encodings as on the Hub):
- ``FreedomIntelligence/medical-o1-reasoning-SFT`` ``en``/train: Question, Complex_CoT, Response
- ``GBaker/MedQA-USMLE-4-options-hf`` train/validation/test: id, sent1, sent2, ending0..3, label (int 0-3)
- ``openlifescienceai/medmcqa`` train/validation/test: id, question, opa..opd, cop (int 0-3), choice_type, exp,
  subject_name, topic_name
- ``bigbio/pubmed_qa`` ``pubmed_qa_labeled_fold0_source``: QUESTION, CONTEXTS, LABELS, MESHES, YEAR,
  reasoning_required_pred, reasoning_free_pred, final_decision (yes/no/maybe), LONG_ANSWER
- ``TIGER-Lab/MMLU-Pro`` test/validation: question_id, question, options (list, up to 10), answer (letter),
  answer_index, cot_content, category, src
- ``cais/mmlu`` ``<subject>`` test/validation/dev: question, subject, choices (4), answer (int)
- ``trl-lib/ultrafeedback_binarized`` train/test: chosen, rejected (conversations: lists of {content, role}, the
  user turn first), score_chosen, score_rejected (floats)
- the evaluation bundle (one JSON object keyed by source; items question, options {A: ..}, answer_idx, answer):
  m1's ten sources in ``bundle/eval_data.json``; HuatuoGPT-o1's own file (``evaluation/data/eval_data.json``) in
  ``bundle/huatuo_o1_eval_data.json``, with that file's shape and quirks: its five sources with uneven counts,
  MMLU-Pro items with 7 to 10 options (A-J) including options that differ only in letter case (genotypes) and
  near-duplicate options, MedMCQA questions of 3 to 8 words (shorter than a 13-gram), a PubMedQA instruction
  sentence every item repeats, and extra item fields
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from diq import DATA
from diq.args import parser

# (question stem, correct answer, distractors) — written for this project
FACTS = [
    ("Which vitamin deficiency causes scurvy with bleeding gums?", "Vitamin C",
     ["Vitamin A", "Vitamin D", "Vitamin K", "Thiamine", "Niacin", "Folate", "Vitamin E", "Riboflavin", "Biotin"]),
    ("Which electrolyte disturbance produces peaked T waves?", "Hyperkalemia",
     ["Hypokalemia", "Hypocalcemia", "Hypernatremia", "Hypomagnesemia", "Hyponatremia", "Hypercalcemia",
      "Hypophosphatemia", "Hyperchloremia", "Hypermagnesemia"]),
    ("Which organism most often causes community-acquired lobar pneumonia?",
     "Streptococcus pneumoniae", ["Staphylococcus aureus", "Klebsiella pneumoniae", "Haemophilus influenzae",
                                  "Mycoplasma pneumoniae", "Legionella pneumophila", "Pseudomonas aeruginosa",
                                  "Moraxella catarrhalis", "Chlamydia pneumoniae", "Escherichia coli"]),
    ("Which drug reverses unfractionated heparin?", "Protamine sulfate",
     ["Vitamin K", "Idarucizumab", "Andexanet alfa", "Fresh frozen plasma", "Desmopressin", "Tranexamic acid",
      "Aminocaproic acid", "Flumazenil", "Naloxone"]),
    ("Which cranial nerve is tested by a shoulder shrug?", "Accessory nerve",
     ["Hypoglossal nerve", "Vagus nerve", "Facial nerve", "Trigeminal nerve", "Glossopharyngeal nerve",
      "Abducens nerve", "Trochlear nerve", "Oculomotor nerve", "Optic nerve"]),
    ("Which hormone do pancreatic islet beta cells secrete?", "Insulin",
     ["Glucagon", "Somatostatin", "Pancreatic polypeptide", "Gastrin", "Secretin", "Cholecystokinin", "Ghrelin",
      "Amylase", "Trypsin"]),
    ("Which antibiotic class binds penicillin-binding proteins?",
     "Beta-lactams", ["Macrolides", "Aminoglycosides", "Tetracyclines", "Fluoroquinolones", "Sulfonamides",
                      "Lincosamides", "Oxazolidinones", "Rifamycins", "Nitroimidazoles"]),
    ("Which heart chamber receives blood from the pulmonary veins?", "Left atrium",
     ["Right atrium", "Right ventricle", "Left ventricle", "Coronary sinus", "Pulmonary trunk", "Aortic root",
      "Superior vena cava", "Inferior vena cava", "Ductus arteriosus"]),
    ("Which enzyme deficiency causes classic phenylketonuria?", "Phenylalanine hydroxylase",
     ["Tyrosinase", "Homogentisate oxidase", "Galactose-1-phosphate uridyltransferase", "Hexosaminidase A",
      "Glucocerebrosidase", "Cystathionine synthase", "Ornithine transcarbamylase", "Aldolase B",
      "Branched-chain ketoacid dehydrogenase"]),
    ("Which laboratory marker is most specific for myocardial injury?", "Cardiac troponin",
     ["Creatine kinase", "Lactate dehydrogenase", "Myoglobin", "Aspartate aminotransferase", "C-reactive protein",
      "D-dimer", "Brain natriuretic peptide", "Alkaline phosphatase", "Amylase"]),
    ("Which neurotransmitter is depleted in Parkinson disease?", "Dopamine",
     ["Serotonin", "Acetylcholine", "Norepinephrine", "Glutamate", "GABA", "Glycine", "Histamine", "Substance P",
      "Oxytocin"]),
    ("Which thyroid antibody is characteristic of Graves disease?", "TSH receptor antibody",
     ["Thyroid peroxidase antibody", "Thyroglobulin antibody", "Antinuclear antibody", "Anti-mitochondrial antibody",
      "Anti-smooth muscle antibody", "Anti-centromere antibody", "Rheumatoid factor", "Anti-Jo-1 antibody",
      "Anti-Scl-70 antibody"]),
    ("Which blood gas finding defines primary metabolic acidosis?", "Low bicarbonate with low pH",
     ["High bicarbonate with high pH", "High carbon dioxide with low pH", "Low carbon dioxide with high pH",
      "Normal bicarbonate with normal pH", "High oxygen with high pH", "Low oxygen with normal pH",
      "High bicarbonate with low pH", "Low bicarbonate with high pH", "Normal carbon dioxide with high pH"]),
    ("Which wrist bone breaks most often after a fall?", "Scaphoid",
     ["Lunate", "Triquetrum", "Hamate", "Capitate", "Trapezium", "Pisiform", "Trapezoid", "Clavicle",
      "Olecranon"]),
]
STEMS = ["A woman, 34, asks at a routine visit. ", "A man, 61, returns for review. ",
         "A medical student revises. ", "A patient, 47, is admitted. "]  # short: a unique token follows each
LETTERS = "ABCDEFGHIJ"


def _uid(salt: str, i: int, k: int) -> str:
    import hashlib

    return hashlib.sha256(f"{salt}:{i}:{k}".encode()).hexdigest()[:6]


def _item(i: int, n_options: int, salt: str) -> tuple[str, list[str], int]:
    """Question text, options and the index of the correct one. Every item carries two tokens of its own around a
    question of at most 11 words, so no two items (across splits and sources) share a 13-word n-gram: a train item
    is never a copy of a test item, as in the real datasets."""
    rng = random.Random(f"{salt}:{i}")
    q, ans, distract = FACTS[i % len(FACTS)]
    assert len(q.split()) <= 11, q
    opts = rng.sample(distract, n_options - 1)
    pos = rng.randrange(n_options)
    opts.insert(pos, ans)
    stem = STEMS[(i + len(salt)) % len(STEMS)]
    return f"{stem}Case {_uid(salt, i, 0)}. {q} (Ref {_uid(salt, i, 1)}.)", opts, pos


def _jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows), encoding="utf-8")


def medqa(split: str, n: int) -> list[dict]:
    out = []
    for i in range(n):
        q, o, a = _item(i, 4, f"medqa:{split}")
        out.append({"id": f"{split}-{i:05d}", "sent1": q, "sent2": "", **{f"ending{j}": o[j] for j in range(4)},
                    "label": a})
    return out


def medmcqa(split: str, n: int) -> list[dict]:
    out = []
    for i in range(n):
        q, o, a = _item(i, 4, f"medmcqa:{split}")
        out.append({"id": f"fixture-{split}-{i:04d}", "question": q, "opa": o[0], "opb": o[1], "opc": o[2],
                    "opd": o[3], "cop": a if split != "test" else -1, "choice_type": "single",
                    "exp": f"The correct option is {o[a]}.", "subject_name": "Medicine", "topic_name": "Fixture"})
    return out


def pubmedqa(split: str, n: int) -> list[dict]:
    out = []
    for i in range(n):
        q, _, _ = _item(i, 2, f"pubmedqa:{split}")
        decision = ["yes", "no", "maybe"][i % 3]
        u = _uid(f"pubmedqa:{split}", i, 2)
        out.append({"QUESTION": f"Does a structured protocol change outcomes in fixture cohort {u}?",
                    "CONTEXTS": [f"BACKGROUND: {q}", f"RESULTS: Cohort {u} was followed for {12 + i} months."],
                    "LABELS": ["BACKGROUND", "RESULTS"], "MESHES": ["Humans"], "YEAR": str(2000 + i),
                    "reasoning_required_pred": decision, "reasoning_free_pred": decision,
                    "final_decision": decision, "LONG_ANSWER": f"The fixture cohort {u} suggests {decision}."})
    return out


CATEGORIES = ("health", "biology", "law", "psychology")  # the real validation split has 5 items per category


def mmlu_pro(split: str, n: int) -> list[dict]:
    out = []
    for i in range(n):
        k = 10 if i % 3 else 4  # MMLU-Pro has up to 10 options, some items fewer
        q, o, a = _item(i, k, f"mmlupro:{split}")
        out.append({"question_id": 9000 + i, "question": q, "options": o, "answer": LETTERS[a], "answer_index": a,
                    "cot_content": f"A: Let's think step by step. The answer is ({LETTERS[a]})." if split == "validation"
                    else "", "category": CATEGORIES[i % 4] if split == "validation" else
                    ("health" if i % 4 else "biology"), "src": "fixture"})
    return out


def mmlu(subject: str, split: str, n: int) -> list[dict]:
    out = []
    for i in range(n):
        q, o, a = _item(i, 4, f"mmlu:{subject}:{split}")
        out.append({"question": q, "subject": subject, "choices": o, "answer": a})
    return out


def medical_o1(n: int) -> list[dict]:
    demo = json.loads((DATA / "medical_o1_demo.json").read_text(encoding="utf-8"))
    return [{"Question": r["Question"], "Complex_CoT": r["Complex_CoT"], "Response": r["Response"]} for r in demo[:n]]


BUNDLE_SOURCES = {"MedQA_USLME_test": 4, "MedMCQA_validation": 4, "PubMedQA_test": 3, "MMLU-Pro_Medical_test": 10,
                  "GPQA_Medical_test": 4, "Medbullets_op4": 4, "Medbullets_op5": 5, "MedXpertQA": 10, "NEJM": 4,
                  "Lancet": 4}


def bundle(n: int) -> dict:
    out = {}
    for src, k in BUNDLE_SOURCES.items():
        items = []
        for i in range(n):
            if src == "PubMedQA_test":
                q, o, a = f"Context: fixture abstract {_uid(src, i, 0)}. Question: does intervention {_uid(src, i, 1)} " \
                    f"help?", ["yes", "no", "maybe"], i % 3
            else:
                q, o, a = _item(i, k, f"bundle:{src}")
            items.append({"question": q, "options": {LETTERS[j]: t for j, t in enumerate(o)}, "answer_idx": LETTERS[a],
                          "answer": o[a], "source": src})
        out[src] = items
    return out


# HuatuoGPT-o1's file: its five sources and uneven counts (the real file: MedMCQA 4,183, MedQA 1,273, PubMedQA 1,000,
# MMLU-Pro 1,535, GPQA 390 items), scaled down
HUATUO_O1_COUNTS = {"MedMCQA_validation": 48, "MedQA_USLME_test": 30, "PubMedQA_test": 24,
                    "MMLU-Pro_Medical_test": 36, "GPQA_Medical_test": 26}
# short MedMCQA-style questions (3-8 words); each carries a token of its own so that items stay distinct
SHORT = ["Antidote for {u} poisoning", "Drug of choice for {u} infestation?", "Nerve supplying the {u} muscle",
         "Most common site of {u} tumour?", "Vaccine strain {u} is", "Inheritance pattern of {u} syndrome?",
         "Treatment of {u} dermatitis", "Enzyme deficient in {u} disease is"]
PUBMEDQA_INSTRUCTION = ("Read the abstract of the study below and answer the research question with yes, no or maybe, "
                        "as the authors concluded.")
GENOTYPES = ["bb bb", "Bb Bb", "BB Bb", "bB bb", "BB BB", "Bb bb", "bb Bb", "BB bb", "bB Bb", "bB BB"]


def huatuo_o1_bundle() -> dict:
    """HuatuoGPT-o1's evaluation file in shape (see the module docstring); items written for this project."""
    out = {}
    for src, n in HUATUO_O1_COUNTS.items():
        items = []
        for i in range(n):
            u = _uid(f"huatuo:{src}", i, 0)
            extra = {}
            if src == "MedMCQA_validation":
                q = SHORT[i % len(SHORT)].format(u=f"x{u}")
                _, o, a = _item(i, 4, f"huatuo:{src}")
            elif src == "PubMedQA_test":
                q = (f"{PUBMEDQA_INSTRUCTION}\nContext: In fixture cohort {u}, {12 + i} patients received protocol "
                     f"{_uid(src, i, 1)}.\nQuestion: Does protocol {_uid(src, i, 1)} shorten the stay?")
                o, a = ["yes", "no", "maybe"], i % 3
            elif src == "MMLU-Pro_Medical_test" and i == 0:  # the real file's genetics item: case-only options
                q = (f"Case {u}. Two heterozygous parents (Bb) have a child. Which genotype pair lists the parents' "
                     f"genotypes as written in the pedigree key?")
                o, a = GENOTYPES, 1
            elif src == "MMLU-Pro_Medical_test":
                k = 7 + i % 4  # 7 to 10 options, A-J
                q, o, a = _item(i, k, f"huatuo:{src}")
                if i % 5 == 1:  # near-duplicate options, as MMLU-Pro's generated distractors have
                    o = list(o)
                    j = (a + 1) % k
                    o[j] = o[a] + "s" if not o[a].endswith("s") else o[a][:-1]
                extra = {"meta_info": "health"}
            else:
                q, o, a = _item(i, 4, f"huatuo:{src}")
            items.append({"question": q, "options": {LETTERS[j]: t for j, t in enumerate(o)}, "answer_idx": LETTERS[a],
                          "answer": o[a], **extra})
        out[src] = items
    return out


def ultrafeedback(split: str, n: int) -> list[dict]:
    rows = []
    for i in range(n):
        q, opts, pos = _item(i, 4, f"ultrafeedback:{split}")
        user = {"content": f"{q} Answer in one sentence.", "role": "user"}
        wrong = opts[(pos + 1) % len(opts)]
        rows.append({"chosen": [user, {"content": f"The answer is {opts[pos]}.", "role": "assistant"}],
                     "rejected": [user, {"content": f"I think it is {wrong}.", "role": "assistant"}],
                     "score_chosen": 8.0, "score_rejected": float(2 + i % 4)})
    return rows


MMLU_SUBJECTS = ("anatomy", "clinical_knowledge", "college_biology", "college_medicine", "medical_genetics",
                 "professional_medicine")


def write_all(out: Path, n: int = 60) -> list[Path]:
    written = []

    def put(rel: str, rows: list[dict]) -> None:
        _jsonl(out / rel, rows)
        written.append(out / rel)

    put("FreedomIntelligence/medical-o1-reasoning-SFT/en/train.jsonl", medical_o1(100))
    for split in ("train", "validation", "test"):
        put(f"GBaker/MedQA-USMLE-4-options-hf/_/{split}.jsonl", medqa(split, n if split == "train" else 12))
        put(f"openlifescienceai/medmcqa/_/{split}.jsonl", medmcqa(split, n if split == "train" else 12))
        put(f"bigbio/pubmed_qa/pubmed_qa_labeled_fold0_source/{split}.jsonl", pubmedqa(split, 12))
    for split in ("test", "validation"):
        put(f"TIGER-Lab/MMLU-Pro/_/{split}.jsonl", mmlu_pro(split, 20 if split == "validation" else 24))
    for split in ("train", "test"):
        put(f"trl-lib/ultrafeedback_binarized/_/{split}.jsonl", ultrafeedback(split, 40 if split == "train" else 8))
    for subject in MMLU_SUBJECTS:
        for split, k in (("test", 12), ("validation", 4), ("dev", 5)):
            put(f"cais/mmlu/{subject}/{split}.jsonl", mmlu(subject, split, k))
    b = out / "bundle" / "eval_data.json"
    b.parent.mkdir(parents=True, exist_ok=True)
    b.write_text(json.dumps(bundle(n), ensure_ascii=False, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    written.append(b)
    h = out / "bundle" / "huatuo_o1_eval_data.json"
    h.write_text(json.dumps(huatuo_o1_bundle(), ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    written.append(h)
    return written


def main(argv=None) -> int:
    ap = parser("fixtures", __doc__)
    ap.add_argument("--out", default=str(DATA / "hub_fixtures"))
    args = ap.parse_args(argv)
    files = write_all(Path(args.out))
    print(f"wrote {len(files)} fixture files under {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
