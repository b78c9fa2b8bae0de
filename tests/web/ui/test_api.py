"""The public API through gradio_client against the real stack (web + redis + worker on the test model)."""

from __future__ import annotations

import re
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from common import events, keys
from common.contract import IMAGE_ONLY
from scripts.stack import wait_for
from tests.web.conftest import start_web
from web.http.artefacts import Owners, artefact_of
from web.queue.box import BoxError, parse_box

pytestmark = pytest.mark.integration
RESULT_NAME = re.compile(r"ocr_result_\d{8}_\d{6}\.txt")


@pytest.fixture(scope="module")
def api(web_url, tmp_path_factory) -> Client:
    return Client(web_url, verbose=False, download_files=str(tmp_path_factory.mktemp("downloads")))


def box_message(text: str) -> str:
    with pytest.raises(BoxError) as info:
        parse_box(text, 640, 480)
    return info.value.message


def test_exactly_three_named_endpoints(api):
    info = api.view_api(print_info=False, return_format="dict")
    named = info["named_endpoints"]
    assert set(named) == {"/vqa", "/ocr", "/describe_region"}
    assert not info["unnamed_endpoints"]
    params = {name: [p["parameter_name"] for p in ep["parameters"]] for name, ep in named.items()}
    assert params == {"/vqa": ["file", "question", "history"], "/ocr": ["image"],
                      "/describe_region": ["image", "box"]}
    assert len(named["/ocr"]["returns"]) == 2


def test_vqa_image_then_follow_up_with_history(api, media):
    first = api.predict(handle_file(str(media["scene"])), "Опиши изображение", [], api_name="/vqa")
    assert isinstance(first, str) and first.strip()
    second = api.predict(handle_file(str(media["scene"])), "А какого цвета фон?", [["Опиши изображение", first]],
                         api_name="/vqa")
    assert isinstance(second, str) and second.strip()


def test_vqa_video(api, media):
    answer = api.predict(handle_file(str(media["video"])), "Опиши видео", [], api_name="/vqa")
    assert isinstance(answer, str) and answer.strip()


def test_ocr_returns_text_and_the_same_text_as_a_file(api, media, settings):
    text, path = api.predict(handle_file(str(media["text"])), api_name="/ocr")
    assert isinstance(text, str) and text.strip()
    assert RESULT_NAME.fullmatch(Path(path).name), path
    assert Path(path).read_text(encoding="utf-8") == text
    written = list(Path(settings.results_dir).glob(f"*/{Path(path).name}"))  # written by MediaStore.write_result
    assert any(p.read_text(encoding="utf-8") == text for p in written)


def test_describe_region_good_box(api, media):
    answer = api.predict(handle_file(str(media["scene"])), " 80, 160 , 208,288 ", api_name="/describe_region")
    assert isinstance(answer, str) and answer.strip()


@pytest.mark.parametrize("box", ["", "80,160,208", "80;160;208;288", "80.5,160,208,288", "-1,160,208,288",
                                 "208,160,80,288", "80,160,700,288", "80,160,82,288"])
def test_describe_region_bad_box_is_a_gradio_error_with_the_russian_message(api, media, box):
    with pytest.raises(AppError) as info:
        api.predict(handle_file(str(media["scene"])), box, api_name="/describe_region")
    assert str(info.value) == box_message(box)


@pytest.fixture(scope="module")
def idle_api(settings, redis_server, tmp_path_factory):
    """A second web whose queue (another Redis database) no worker serves: jobs wait QUEUE_WAIT_TIMEOUT=3 s."""
    redis_url = redis_server.url.rsplit("/", 1)[0] + "/6"
    svc, url = start_web(settings, tmp_path_factory.mktemp("idle-web"), "web-idle", REDIS_URL=redis_url,
                         QUEUE_WAIT_TIMEOUT="3")
    api = Client(url, verbose=False, download_files=False)
    api.redis = events.connect(redis_url)
    yield api
    svc.stop()


def test_waiting_jobs_do_not_block_each_other(idle_api, media):
    """Three calls wait on the queue at once (not one after another), and a fourth call to the same endpoint
    is answered while they wait; with no worker each ends in the Russian «no worker» message."""
    scene = str(media["scene"])
    started = time.monotonic()
    jobs = [idle_api.submit(handle_file(scene), "80,160,208,288", api_name="/describe_region") for _ in range(3)]
    wait_for(lambda: idle_api.redis.zcard(keys.WAITING) == 3, 2, "three jobs waiting at once")
    with pytest.raises(AppError, match="ровно четыре целых числа"):
        idle_api.predict(handle_file(scene), "1,2,3", api_name="/describe_region")
    assert time.monotonic() - started < 2.5
    for job in jobs:
        with pytest.raises(AppError, match="Нет доступных обработчиков: задание не взято в работу за 3 с"):
            job.result(timeout=30)
    assert time.monotonic() - started < 7  # one after another would take ≥ 9 s


def test_russian_errors_for_bad_inputs(api, media, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("hello", encoding="utf-8")
    with pytest.raises(AppError, match="Неподдерживаемый тип файла"):
        api.predict(handle_file(str(notes)), "Что это?", [], api_name="/vqa")
    with pytest.raises(AppError, match="Вопрос пустой"):
        api.predict(handle_file(str(media["scene"])), "  ", [], api_name="/vqa")
    with pytest.raises(AppError, match="История должна быть JSON-списком пар"):
        api.predict(handle_file(str(media["scene"])), "Что это?", [["только вопрос"]], api_name="/vqa")
    with pytest.raises(AppError) as info:
        api.predict(handle_file(str(media["video"])), api_name="/ocr")
    assert str(info.value) == IMAGE_ONLY


def status_of(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_files_are_served_only_from_results_dir(web_url, settings, store, media):
    """Gradio's file route: RESULTS_DIR is allowed, a result to its owner only (web.http.artefacts); uploads in
    MEDIA_DIR and anything else are not."""
    result = store.write_result("проверка")
    assert status_of(f"{web_url}gradio_api/file={result.resolve()}") == 404  # nobody's: served to nobody
    owners = Owners(events.connect(settings.redis_url), 3600)
    owners.set(artefact_of(result.resolve(), settings.results_dir.resolve()), "127.0.0.1")
    assert status_of(f"{web_url}gradio_api/file={result.resolve()}") == 200  # its owner: this address
    upload = store.resolve(store.save_upload(media["scene"]))
    assert status_of(f"{web_url}gradio_api/file={upload.resolve()}") == 403
    assert status_of(f"{web_url}gradio_api/file=/etc/passwd") == 403
    assert status_of(f"{web_url}gradio_api/file={Path(__file__).resolve()}") == 403
