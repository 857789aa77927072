"""Catalogue bulk imports (JSON lines, CSV) with progress and downloadable refused rows; the admin pages."""
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from apps.core.file_imports import ImportStatus
from apps.recommendations import services
from apps.recommendations.models import CatalogImport, CatalogItem, ModelBuild
from tests.factories import make_user
from tests.support.admin import changelist

pytestmark = pytest.mark.django_db

IMPORTS = "/v1/catalog/imports"


def upload(client, name, text):
    return client.post(IMPORTS, {"format": name.rsplit(".", 1)[-1], "filename": name, "content": text},
                       format="json")


def test_json_lines_import_writes_good_rows_and_lists_refused_ones(marketer_client):
    lines = [json.dumps({"item_id": "a", "name": "Alpha", "category": "x", "tags": ["t"], "price": 3}),
             "{not json",
             json.dumps({"item_id": "b", "name": "", "category": "x"}),
             "",
             json.dumps(["a list"]),
             json.dumps({"item_id": "c", "name": "Gamma", "available": False, "attributes": {"kg": 2}}),
             json.dumps({"item_id": "a", "name": "Alpha 2"})]
    response = upload(marketer_client, "items.jsonl", "\n".join(lines))
    assert response.status_code == 202, response.content
    body = response.json()
    assert {k: body[k] for k in ("format", "status", "total_rows", "processed_rows", "percent", "created", "updated",
                                 "refused")} == {
        "format": "jsonl", "status": "done", "total_rows": 6, "processed_rows": 6, "percent": 100, "created": 2,
        "updated": 1, "refused": 3}
    assert dict(CatalogItem.objects.values_list("item_id", "name")) == {"a": "Alpha 2", "c": "Gamma"}
    refused = marketer_client.get(body["refused_rows_url"])
    assert refused.status_code == 200 and refused["Content-Type"] == "text/csv"
    assert refused.content.decode().splitlines() == [
        "line,reason", "2,not JSON: Expecting property name enclosed in double quotes (column 2)",
        "3,name: required", "5,not a JSON object"]
    assert marketer_client.get(f"{IMPORTS}/{body['id']}").json()["refused"] == 3


def test_csv_import_with_tags_and_attributes(marketer_client):
    text = ("item_id,name,category,tags,attributes,price,available\n"
            'sku-1,Trail Shoes,running,trail|waterproof,"{""weight_kg"": 0.8}",89.90,true\n'
            "sku-2,Socks,running,,,-1,true\n"
            'sku-3,Tent,camping,,"{bad",300,false\n'
            "sku-4,Lamp,camping,,,35,false,extra\n")
    body = upload(marketer_client, "items.csv", text).json()
    assert (body["created"], body["refused"]) == (1, 3)
    item = CatalogItem.objects.get(item_id="sku-1")
    assert (item.tags, item.attributes, str(item.price)) == (["trail", "waterproof"], {"weight_kg": 0.8}, "89.90")
    reasons = CatalogImport.objects.get().refused_rows
    assert reasons == [[3, 'price: a number or a decimal string such as "89.90"'],
                       [4, 'attributes: must be a JSON object, e.g. {"weight_kg": 1.2}'],
                       [5, "has 8 values but the header has 7 columns"]]


@pytest.mark.parametrize("name, text, detail", [
    ("x.csv", "id,title\n1,a\n", "bad header line"),
    ("x.jsonl", "\n\n", "the file has no data rows"),
    ("x.xml", "<items/>", 'format: "xml" is not a valid choice.'),
])
def test_a_file_that_cannot_be_imported_is_a_400(marketer_client, name, text, detail):
    response = upload(marketer_client, name, text)
    assert response.status_code == 400 and response.json()["field"] in ("file", "format")
    assert response.json()["detail"].startswith(detail)
    assert not CatalogImport.objects.exists()


def test_a_large_import_is_queued_and_resumes(marketer_client, settings):
    settings.RECS_IMPORT_INLINE_MAX_ROWS = 1
    settings.CELERY_TASK_ALWAYS_EAGER = False
    text = "\n".join(json.dumps({"item_id": f"i{n}", "name": f"Item {n}"}) for n in range(3))
    imp = services.catalog_import_create(filename="big.jsonl", data=text.encode(), actor=marketer_client.user)
    assert imp.status == ImportStatus.QUEUED and imp.total_rows == 3
    done = services.catalog_import_run(import_id=imp.pk)
    assert (done.status, done.created, done.processed_rows) == (ImportStatus.DONE, 3, 3)
    assert services.catalog_import_run(import_id=imp.pk).created == 3  # a redelivery writes nothing again


def test_imports_need_the_writer_role(nobody_client):
    assert upload(nobody_client, "a.jsonl", '{"item_id": "a", "name": "A"}').status_code == 403
    assert not CatalogItem.objects.exists()


def test_admin_pages(shop):
    services.recommendations_rebuild()
    client = Client()
    client.force_login(make_user("Marketer"))
    cl = changelist(client.get("/admin/recommendations/catalogitem/", {"q": "running", "available__exact": "1"}),
                    expect_rows=True)
    assert {item.item_id for item in cl.result_list} == {"shoes", "socks"}
    changelist(client.get("/admin/recommendations/catalogaudit/", {"q": "shoes"}), expect_rows=True)
    builds = changelist(client.get("/admin/recommendations/modelbuild/"), expect_rows=True)
    build = builds.result_list[0]
    assert build.status == ModelBuild.Status.SERVED and build.duration_seconds > 0
    page = client.get("/admin/recommendations/modelbuild/").content.decode()
    assert f"{build.duration_seconds:.1f} s" in page  # the rebuild time
    response = client.post("/admin/recommendations/catalogitem/", {
        "action": "make_unavailable", "_selected_action": [CatalogItem.objects.get(item_id="socks").pk]})
    assert response.status_code == 302
    assert CatalogItem.objects.get(item_id="socks").available is False
    add = client.post("/admin/recommendations/catalogimport/add/",
                      {"file": SimpleUploadedFile("a.jsonl", b'{"item_id": "new", "name": "New"}\n{"bad')})
    assert add.status_code == 302, add.content.decode()[:500]
    imp = CatalogImport.objects.get()
    assert (imp.created, imp.refused) == (1, 1)
    cl = changelist(client.get("/admin/recommendations/catalogimport/"), expect_rows=True)
    refused = client.get(f"/admin/recommendations/catalogimport/{imp.pk}/refused.csv")
    assert refused.status_code == 200
    assert refused.content.decode().splitlines() == ["line,reason", "2,not JSON: Unterminated string starting at (column 2)"]
    viewer = Client()
    viewer.force_login(make_user("Approver"))
    assert viewer.get("/admin/recommendations/catalogitem/").status_code == 200
    assert viewer.get("/admin/recommendations/catalogimport/add/").status_code == 403


@pytest.mark.django_db(transaction=True)
def test_two_runners_of_one_import_write_each_row_once(marketer_client, monkeypatch):
    from apps.recommendations.services import catalog
    from tests.support.threads import run_together

    monkeypatch.setattr(catalog, "IMPORT_CHUNK_ROWS", 2)
    text = "\n".join(json.dumps({"item_id": f"i{n}", "name": f"Item {n}"}) for n in range(9))
    imp = services.catalog_import_create(filename="big.jsonl", data=text.encode(), actor=marketer_client.user)
    run_together([lambda: services.catalog_import_run(import_id=imp.pk)] * 2)
    imp.refresh_from_db()
    assert (imp.status, imp.processed_rows, imp.created, imp.updated) == (ImportStatus.DONE, 9, 9, 0)
    assert CatalogItem.objects.count() == 9
