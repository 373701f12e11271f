"""A SMART App Launch by an independent client: SMART's own Python client
(PyPI `fhirclient` 4.4.0) launches standalone against EMR Ledger, with PKCE,
reads the patient's Conditions, updates the patient with its token under
`If-Match` (a stale one is refused), and sends a transaction Bundle built with
the client's own models. The browser's part (the sign-in and
consent page) is played with `requests`. Prints what happened as JSON.

Environment: EMR_FHIR_BASE, EMR_CLIENT_ID, EMR_REDIRECT_URI, EMR_USERNAME,
EMR_PASSWORD, EMR_TOTP_SECRET (base32), EMR_SCOPE.
"""

import base64
import hashlib
import hmac
import json
import os
import re
import struct
import sys
import time
from html import unescape

import requests
from fhirclient import client
from fhirclient.models.bundle import Bundle
from fhirclient.models.condition import Condition
from fhirclient.models.patient import Patient


def totp(secret, at):
    """RFC 6238: SHA-1, 6 digits, 30-second steps."""
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    digest = hmac.new(key, struct.pack(">Q", int(at) // 30), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    number = struct.unpack(">I", digest[offset:offset + 4])[0] & 0x7FFFFFFF
    return f"{number % 1_000_000:06d}"


def main():
    env = os.environ
    settings = {
        "app_id": env["EMR_CLIENT_ID"],
        "api_base": env["EMR_FHIR_BASE"],
        "redirect_uri": env["EMR_REDIRECT_URI"],
        "scope": env["EMR_SCOPE"],
    }
    smart = client.FHIRClient(settings=settings)
    authorize_url = smart.authorize_url
    report = {"authorize_url": authorize_url}

    # The user's browser: the sign-in and consent page, then the redirect.
    browser = requests.Session()
    page = browser.get(authorize_url, timeout=30)
    page.raise_for_status()
    form = {unescape(name): unescape(value) for name, value in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page.text)}
    # The consent screen offers each scope ticked; the user keeps them all.
    form.update({unescape(name): unescape(value) for name, value in re.findall(r'<input type="checkbox" id="[^"]+" name="([^"]+)" value="([^"]*)" checked>', page.text)})
    # The API sign-in used this step's code; a code is good once, and the server
    # accepts the next step's too.
    form.update({
        "username": env["EMR_USERNAME"],
        "password": env["EMR_PASSWORD"],
        "code": totp(env["EMR_TOTP_SECRET"], time.time() + 30),
        "decision": "approve",
    })
    answer = browser.post(page.url.split("?")[0], data=form, allow_redirects=False, timeout=30)
    if answer.status_code not in (302, 303):
        report["sign_in_failed"] = {"status": answer.status_code, "page": answer.text[:2000]}
        print(json.dumps(report))
        return 1
    callback = answer.headers["Location"]
    report["pkce_challenge_sent"] = "code_challenge=" in authorize_url and "code_challenge_method=S256" in authorize_url

    # The app again: the code (with its PKCE verifier) for tokens, then FHIR reads.
    smart.handle_callback(callback)
    report["patient"] = smart.patient_id
    report["scope"] = smart.launch_context.get("scope") if smart.launch_context else None
    conditions = Condition.where(struct={"patient": smart.patient_id}).perform_resources(smart.server)
    report["conditions"] = [coding.code for condition in conditions for coding in condition.code.coding]

    # An update conditional on the version read: the first lands, the same one again is stale.
    patient_url = f"{env['EMR_FHIR_BASE']}/Patient/{smart.patient_id}"
    bearer = {"Authorization": f"Bearer {smart.server.auth.access_token}"}
    read = requests.get(patient_url, headers=bearer, timeout=30)
    read.raise_for_status()
    resource = read.json()
    resource["telecom"] = [{"system": "phone", "value": "+86 10 5555 0199"}]
    conditional = {**bearer, "If-Match": read.headers["ETag"], "Content-Type": "application/fhir+json"}
    first = requests.put(patient_url, json=resource, headers=conditional, timeout=30)
    stale = requests.put(patient_url, json=resource, headers=conditional, timeout=30)
    report["read_etag"] = read.headers["ETag"]
    report["update"] = {"status": first.status_code, "etag": first.headers.get("ETag")}
    report["stale_update"] = {"status": stale.status_code, "code": stale.json()["issue"][0]["details"]["coding"][0]["code"]}

    # A transaction Bundle built with the client's own models, posted to the base,
    # its answer read back by them; then the change read as a Patient.
    current = requests.get(patient_url, headers=bearer, timeout=30)
    current.raise_for_status()
    changed = current.json()
    changed["telecom"] = [{"system": "phone", "value": "+86 10 5555 0123"}]
    bundle = Bundle({
        "type": "transaction",
        "entry": [{"resource": changed, "request": {"method": "PUT", "url": f"Patient/{smart.patient_id}", "ifMatch": current.headers["ETag"]}}],
    })
    answered = Bundle(smart.server.post_json("", bundle.as_json()).json())
    report["transaction"] = {"type": answered.type, "status": answered.entry[0].response.status, "etag": answered.entry[0].response.etag}
    report["transaction_phone"] = Patient.read(smart.patient_id, smart.server).telecom[0].value

    # What the scopes do not cover is refused, even for the app's own patient.
    encounters = requests.get(f"{env['EMR_FHIR_BASE']}/Encounter?patient={smart.patient_id}", headers=bearer, timeout=30)
    report["encounter_search_status"] = encounters.status_code
    api = requests.get(f"{env['EMR_FHIR_BASE'].rsplit('/fhir/', 1)[0]}/v1/patients/{smart.patient_id}", headers=bearer, timeout=30)
    report["rest_api_status"] = api.status_code
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
