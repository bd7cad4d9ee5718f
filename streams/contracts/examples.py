"""One synthetic example per input contract, exactly as a partner would send it as JSON.

The docs print them and the tests decode them and check them against the generated JSON
Schema, so an example can never drift from the contract. Together they tell one story: an
elderly resident in Zhoukou gets a call from a virtual-operator number posing as police,
shares their screen, transfers money to a mule account, and the case is filed.
All numbers, tokens and ids are synthetic.
"""

RESIDENT = "+8613800000001"
FRAUDSTER = "+8617000000002"  # 170: a virtual-operator range

EXAMPLES: dict[str, dict] = {
    "TelecomEvent": {
        "event_id": "cm-20250314-0000481",
        "event_time": "2025-03-14T09:21:07+08:00",
        "carrier": "china_mobile",
        "kind": "call",
        "direction": "incoming",
        "subscriber": RESIDENT,
        "counterpart": "0086 170 0000 0002",  # carriers may send any common form
        "counterpart_type": "virtual_operator",
        "cell_id": "ZK-411602-0231",
        "answered": True,
        "duration_s": 1260,
        "carrier_flagged": True,
        "sms_urls": [],
    },
    "BankEvent": {
        "event_id": "icbc-7f3a-000019",
        "event_time": "2025-03-14T09:47:55+08:00",
        "bank": "ICBC",
        "kind": "transfer_out",
        "account": "tok_4f2a9c1e7b",
        "branch_code": "ZK-411602-003",
        "channel": "mobile_banking",
        "holder_phone": "138 0000 0001",
        "counterparty_account": "tok_mule_8d31e0",
        "counterparty_bank": "CCB",
        "amount": "49800.00",
        "payee_is_new": True,
    },
    "AppReport": {
        "event_id": "jzz-20250314-00072",
        "event_time": "2025-03-14T09:38:12+08:00",
        "source": "antifraud_app",
        "kind": "screen_sharing",
        "reporter_phone": RESIDENT,
        "counterpart": FRAUDSTER,
        "url": None,
        "apk_sha256": None,
        "during_banking_session": True,
    },
    "CaseReport": {
        "event_id": "jz-case-2025-0314-0007",
        "event_time": "2025-03-14T15:02:40+08:00",
        "case_id": "ZK2025031400007",
        "occurred_at": "2025-03-14T09:47:55+08:00",
        "typology": "impersonate_police",
        "county": "411602",
        "station": "411602-PCS-03",
        "victim_phone": RESIDENT,
        "victim_account": "tok_4f2a9c1e7b",
        "loss_amount": "49800.00",
    },
    "IntelUpdate": {
        "event_id": "intel-mps-20250314-0113",
        "event_time": "2025-03-14T10:05:00+08:00",
        "kind": "fraud_number",
        "value": FRAUDSTER,
        "op": "upsert",
        "typology": "impersonate_police",
        "confidence": 0.95,
        "source": "ministry_list",
        "expires_at": "2025-06-14T00:00:00+08:00",
    },
    "RegistryUpdate": {
        "event_id": "reg-cm-20250301-55120",
        "event_time": "2025-03-01T02:00:00+08:00",
        "identifier_kind": "phone",
        "identifier": RESIDENT,
        "op": "upsert",
        "person_id": "P-7f3c2a91",
        "county": "411602",
        "station": "411602-PCS-03",
        "grid": "411602-03-017",
        "age_band": "70_plus",
        "student": False,
    },
}
