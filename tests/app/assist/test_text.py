"""The pure parts of assistance: summary, emotion hint, features and the classifier's why."""

from __future__ import annotations

import numpy as np

from app.assist import text as atext
from app.conversations.config import load_rules


def test_summary_keeps_the_sentences_with_the_order_number_and_drops_greetings() -> None:
    texts = ["你好", "在吗？", "我上周买的耳机到现在还没发货。订单号 2026112500123456，一直显示待发货。",
             "能不能帮我催一下物流？", "谢谢"]
    summary = atext.summarize(texts, rules=load_rules())
    assert summary.sentences == ["我上周买的耳机到现在还没发货。", "订单号 2026112500123456，一直显示待发货。",
                                 "能不能帮我催一下物流？"]
    assert summary.text == ("我上周买的耳机到现在还没发货；订单号 2026112500123456，一直显示待发货；"
                            "能不能帮我催一下物流？")
    assert summary.fields == {"order_no": "2026112500123456", "category": "物流"}
    assert summary.kept == ["order_no", "category"] and summary.coverage == 1.0


def test_summary_is_bounded_and_drops_near_duplicates() -> None:
    texts = ["空调不制冷了。", "空调不制冷了！", "师傅什么时候上门？"]
    texts += [f"第{i}次补充说明一些无关的细节内容" for i in range(10)]
    summary = atext.summarize(texts, rules=load_rules())
    assert len(summary.sentences) <= atext.SUMMARY_SENTENCES
    assert len(summary.text) <= atext.SUMMARY_CHARS
    assert sum("不制冷" in s for s in summary.sentences) == 1
    assert atext.summarize(["你好", "人工"], rules=load_rules()).text == ""


def test_emotion_hint_names_the_words_and_suggests_a_tone() -> None:
    angry = atext.emotion(["你们这是什么服务！！", "我要投诉"])
    assert angry is not None
    assert (angry.kind, angry.phrases, angry.confidence) == ("anger", ("投诉", "！！"), 0.75)
    assert angry.tone.startswith("客户情绪激动：先真诚致歉")
    worried = atext.emotion(["孩子明天就要用，很着急，什么时候能到？"])
    assert worried is not None
    assert (worried.kind, worried.phrases) == ("anxiety", ("着急", "什么时候能"))
    assert worried.tone.startswith("客户比较着急")
    assert atext.emotion(["请问发票怎么开"]) is None


def test_prediction_names_the_words_that_pushed_it() -> None:
    texts = ["退款一直没到账", "申请退款", "退款什么时候到", "发票开错了", "开发票", "发票抬头"] * 3
    labels = ["退款", "退款", "退款", "发票", "发票", "发票"] * 3
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=4.0, max_iter=500).fit(atext.features(texts, [], dense_dim=0), labels)
    guess = atext.predict(classes=list(model.classes_), coef=model.coef_, intercept=model.intercept_,
                          text="我的退款还没收到", vector=None)
    assert guess.label == "退款" and guess.confidence > 0.5
    assert guess.phrases[0] == "退款"
    assert [c for c, _ in guess.ranking] == ["退款", "发票"]


def test_features_put_the_vector_after_the_hashed_words() -> None:
    x = atext.features(["退款"], [np.array([0.6, 0.8], dtype=np.float32)], dense_dim=2).toarray()
    assert x.shape == (1, atext.HASH_FEATURES + 2)
    assert np.allclose(x[0, -2:], [0.6, 0.8])
    assert np.isclose(np.linalg.norm(x[0, :-2]), 1.0)
