"""The phone and personal-data finders skip texts that cannot hold what they look for, with the same answers."""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.security import crypto, pii

#: digits (ASCII, full-width, Arabic-Indic), the signs numbers and addresses are written with, Chinese and letters
_CHARS = st.sampled_from([
    *"0123456789０１２３４５６７８９٣٤+＋-－ ()（）.@＠xX电话号码客户ab:", "年", "月", "/", "~", "～", "#",
    "\u3000", "\t", ",", "e", "t", "n", "i", "[", "]", "［", "］", "ー", "·"])


def _library_phones(text: str) -> list[str]:
    return [phonenumbers.format_number(m.number, phonenumbers.PhoneNumberFormat.E164)
            for m in phonenumbers.PhoneNumberMatcher(text, "CN")]


def test_the_phone_digit_floor_is_the_shortest_number_the_installed_library_accepts() -> None:
    def shortest(metadata: phonenumbers.PhoneMetadata) -> int:
        desc = metadata.general_desc
        assert desc is not None
        return min((n for n in desc.possible_length if n > 0), default=99)

    abroad = [len(str(m.country_code)) + shortest(m) for m in (
        *(phonenumbers.PhoneMetadata.metadata_for_region(r) for r in phonenumbers.SUPPORTED_REGIONS),
        *(phonenumbers.PhoneMetadata.metadata_for_nongeo_region(c)
          for c in phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS)) if m is not None]
    cn = phonenumbers.PhoneMetadata.metadata_for_region("CN")
    assert cn is not None
    assert crypto.MIN_PHONE_DIGITS == min(shortest(cn), *abroad) == 6


def test_a_text_with_too_few_digits_is_not_handed_to_the_phone_matcher(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("the matcher ran")

    text = "压测工单 2-123: 快递三天没有更新物流信息，订单 Ａ１"  # five digits
    monkeypatch.setattr(phonenumbers, "PhoneNumberMatcher", refuse)
    assert crypto.find_phones(text) == []
    assert crypto.find_phones("") == []
    with pytest.raises(AssertionError, match="the matcher ran"):
        crypto.find_phones("请回电 138-1234-5678")


def test_a_text_without_a_plus_sign_needs_a_national_numbers_digits_between_the_signs_numbers_use() -> None:
    # a number written without "+" is a Chinese national number or "00" and a foreign one; its digits stand
    # together, with at most four of phonenumbers' punctuation characters (its matcher ignores case) between them
    cn = phonenumbers.PhoneMetadata.metadata_for_region("CN")
    assert cn is not None and cn.general_desc is not None
    assert crypto.MIN_NATIONAL_DIGITS == min(n for n in cn.general_desc.possible_length if n > 0) == 7
    assert crypto.MIN_NATIONAL_DIGITS < 2 + crypto.MIN_PHONE_DIGITS  # "00" and the shortest number abroad
    from phonenumbers import phonenumberutil

    punctuation = phonenumberutil._VALID_PUNCTUATION
    assert crypto._PHONE_PUNCTUATION == punctuation[:2] + "X" + punctuation[2:]


def test_digits_that_no_number_holds_together_are_not_handed_to_the_phone_matcher(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("the matcher ran")

    monkeypatch.setattr(phonenumbers, "PhoneNumberMatcher", refuse)
    # six digits in one place; a date, an amount and a time apart: no Chinese number has fewer than seven
    for text in ("压测工单 2-12345: 快递三天没有更新物流信息", "2026年12月6日 10:30 退款 299 元", "订单 1234 5 6"):
        assert crypto.find_phones(text) == [], text
    for text in ("请回电 138-1234-5678", "总机 (010) 1234567", "+683 4002", "订单 12345　6 7"):
        with pytest.raises(AssertionError, match="the matcher ran"):
            crypto.find_phones(text)


def test_a_number_at_the_floor_is_still_found() -> None:
    assert crypto.find_phones("他的电话 +683 4002（纽埃）") == ["+6834002"]
    assert crypto.find_phones("请打１３８１２３４５６７８") == ["+8613812345678"]


@settings(max_examples=400, deadline=None)
@given(st.text(_CHARS, max_size=40))
def test_phones_found_are_the_librarys_for_any_text(text: str) -> None:
    assert crypto.find_phones(text) == _library_phones(text)


def test_a_text_without_an_at_sign_or_ten_digits_is_not_scanned(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(text: str) -> list[tuple[int, int, str, str]]:
        raise AssertionError("scanned")

    monkeypatch.setattr(pii, "_scan", refuse)
    assert pii.find_pii("压测工单 2-1: 快递三天没有更新物流信息 ０７５５-１２３") == []  # nine digits
    assert pii.mask_text("客户来电反映物流停滞, 请跟进。") == "客户来电反映物流停滞, 请跟进。"
    for text in ("写信到 z@example.com", "写信到 z＠example.com", "0755-12345678", "１３８１２３４５６７８"):
        with pytest.raises(AssertionError, match="scanned"):
            pii.find_pii(text)


def test_the_shortest_of_each_kind_is_found() -> None:
    assert [k for _, _, k, _ in pii.find_pii("座机 010-1234567")] == ["phone"]
    assert [k for _, _, k, _ in pii.find_pii("a@b.cn")] == ["email"]
    assert pii.mask_text("手机13812345678") == "手机138****5678"


@settings(max_examples=400, deadline=None)
@given(st.text(_CHARS, max_size=40))
def test_personal_data_found_is_the_full_scans_for_any_text(text: str) -> None:
    assert pii.find_pii(text) == pii._scan(text)
