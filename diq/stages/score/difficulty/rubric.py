"""The written rubric the judge rates with: one prompt per perspective, answer = a single digit 1–5."""

RUBRICS = {
    "knowledge": (
        "Rate how much specialised medical KNOWLEDGE is needed to answer this question correctly.\n"
        "1 = common knowledge any adult has; 2 = basic health literacy or first-year biology; 3 = core medical-school "
        "knowledge (standard physiology, pharmacology, common diseases); 4 = specialist or board-level knowledge "
        "(uncommon presentations, specific guidelines, drug interactions); 5 = sub-specialist or rare-disease "
        "knowledge that most physicians would need to look up."),
    "reasoning": (
        "Rate how much multi-step clinical REASONING is needed to reach the answer.\n"
        "1 = a single recall step; 2 = one inference from the given facts; 3 = combining two or three findings; "
        "4 = a differential diagnosis that must weigh several findings and exclude alternatives; 5 = long chains of "
        "inference with conflicting or distracting information, or reasoning about mechanisms across systems."),
    "overall": (
        "Rate the OVERALL difficulty of this question for a medical student preparing for a licensing exam, "
        "taking both the knowledge and the reasoning it needs into account.\n"
        "1 = trivial; 2 = easy; 3 = moderate; 4 = hard; 5 = very hard (most students would get it wrong)."),
}


def judge_prompt(rec: dict, perspective: str, with_answer: bool = True, with_reasoning: bool = True) -> str:
    """The judge sees what the difficulty classifier sees: the question, the reasoning and the response."""
    parts = [RUBRICS[perspective], "", f"Question:\n{rec['question']}"]
    if with_reasoning and rec.get("reasoning"):
        parts += ["", f"Reference reasoning:\n{rec['reasoning']}"]
    if with_answer:
        parts += ["", f"Reference answer:\n{rec['response']}"]
    parts += ["", "Reply with a single digit from 1 to 5."]
    return "\n".join(parts)
