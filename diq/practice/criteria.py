"""Rubric prompts for the three expert-practice dimensions, each scored 1–5 (anchors written for physicians and
LLM judges alike; the review form shows the same text)."""

DIMENSIONS = ["differential_diagnosis", "safety_check", "evidence_citation"]

TITLES = {"differential_diagnosis": "Differential diagnosis", "safety_check": "Safety check",
          "evidence_citation": "Evidence citation"}

RUBRICS = {
    "differential_diagnosis": (
        "Rate how well the answer practises DIFFERENTIAL DIAGNOSIS: does it name the plausible alternatives and "
        "weigh the findings for and against each before committing?\n"
        "1 = jumps to one answer, no alternative considered; 2 = mentions an alternative in passing; "
        "3 = lists alternatives but weighs them superficially; 4 = weighs the main alternatives against the key "
        "findings; 5 = systematic, prioritised differential with explicit reasons for excluding each alternative."),
    "safety_check": (
        "Rate the SAFETY CHECK in the answer: does it look for dangerous diagnoses that must not be missed, "
        "contraindications, interactions, red flags, and say when to escalate or refer?\n"
        "1 = no safety consideration, or advice that could harm; 2 = a generic caution only; 3 = one relevant "
        "safety point; 4 = the relevant red flags or contraindications are checked; 5 = thorough, specific safety "
        "checking with clear escalation criteria."),
    "evidence_citation": (
        "Rate the EVIDENCE CITATION in the answer: does it ground its claims in named guidelines, trial evidence, "
        "established criteria or mechanisms, rather than bare assertions?\n"
        "1 = bare assertions only; 2 = vague appeal to 'studies' or 'guidelines'; 3 = names an established "
        "criterion, guideline or mechanism once; 4 = grounds the key claims in specific, correct evidence; "
        "5 = consistently cites specific, correct and relevant evidence for each key step."),
}


def practice_prompt(item: dict, dimension: str) -> str:
    return "\n".join([
        "You are a senior physician reviewing a medical answer.", RUBRICS[dimension], "",
        f"Question:\n{item['question']}", "", f"Answer:\n{item['text']}", "",
        "Reply with a single digit from 1 to 5."])
