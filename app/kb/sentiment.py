"""A deliberately simple anger check: a weighted lexicon of complaint and anger markers plus intensity signs.

It only decides whether the bot should stop answering and hand the customer to a person, so a miss costs little
(the customer can still ask for 人工) and a false alarm costs a person's minute. Measured, not assumed:
``python -m bench.kb_eval`` reports its macro-F1 on the waimai_10k reviews next to a majority-class baseline and a
supervised scikit-learn model trained on half of that data (a reference the lexicon does not need any data for).
"""

from __future__ import annotations

import re

#: strong anger or complaint: one is enough
STRONG: tuple[str, ...] = (
    "投诉", "举报", "曝光", "12315", "垃圾", "骗子", "骗人", "坑人", "坑爹", "黑心", "奸商", "恶心", "气死",
    "愤怒", "忍无可忍", "太过分", "欺骗", "无良", "差评", "退钱", "再也不", "不会再", "滚", "什么玩意", "破玩意",
    "搞什么", "有病", "无语", "失望", "最差", "太差", "极差", "态度差", "态度恶劣", "难吃", "难用", "上当",
)
#: weaker negative markers
WEAK: tuple[str, ...] = (
    "差", "慢", "不好", "不行", "没用", "凉了", "冷了", "错了", "送错", "少了", "漏了", "坏了", "不新鲜", "太久",
    "半天", "到底", "怎么回事", "根本", "居然", "竟然", "不满", "糟糕", "烂", "不值", "后悔", "没有人",
    "不理", "不回",
)
#: texts that praise: they cancel weak markers ("不错", "很好")
POSITIVE: tuple[str, ...] = ("不错", "很好", "好吃", "满意", "谢谢", "感谢", "赞", "喜欢", "好评", "准时", "很快")
_INTENSE = re.compile(r"[!！?？]{2,}")


#: chosen on the training half of waimai_10k in bench/kb_eval.py (0.5 beat 1.0 and 1.5 there)
CUT_OFF = 0.5


def anger_score(text: str) -> float:
    """A score >= CUT_OFF means angry; strong words count 1, weak words 0.5, repeated !/? 0.5, praise -0.5."""
    score = 0.0
    for word in STRONG:
        if word in text:
            score += 1.0
    for word in WEAK:
        if word in text:
            score += 0.5
    for word in POSITIVE:
        if word in text:
            score -= 0.5
    if _INTENSE.search(text):
        score += 0.5
    return score


def is_angry(text: str) -> bool:
    """Whether the customer sounds angry enough to hand over to a person."""
    return anger_score(text) >= CUT_OFF


#: worry and urgency (the ticket page's anxiety hint; the bot does not hand off on these): one is enough
ANXIOUS: tuple[str, ...] = (
    "着急", "急死", "很急", "急用", "赶紧", "尽快", "马上", "快点", "担心", "害怕", "等了", "催", "来不及", "耽误",
    "能不能快",
)
#: words plain questions use too ("忘记密码怎么办"): two of them are needed (4.3% of neutral ATEC questions showed
#: a hint when one was enough, bench/kb_eval.py)
ANXIOUS_WEAK: tuple[str, ...] = ("怎么办", "还没", "一直没", "万一", "会不会", "什么时候能", "多久才")


def anger_phrases(text: str) -> list[str]:
    """The lexicon's anger and complaint markers found in a text (the "why" of an anger hint)."""
    found = [w for w in STRONG if w in text] + [w for w in WEAK if w in text]
    if _INTENSE.search(text):
        found.append(_INTENSE.search(text).group(0))  # type: ignore[union-attr]
    return found


def anxiety_phrases(text: str) -> list[str]:
    """Worry and urgency markers found in a text (empty unless a strong one or two weak ones show)."""
    strong = [w for w in ANXIOUS if w in text]
    weak = [w for w in ANXIOUS_WEAK if w in text]
    return strong + weak if strong or len(weak) >= 2 else []
