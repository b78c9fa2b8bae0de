"""The Russian strings web.ui.locale puts into the page: Gradio's i18n keys its Russian bundle lacks (RU_KEYS) and
the English its frontend writes without any key (TEXT), as written by GRADIO_VERSION. Data only; the regular
expressions for what varies (sizes, counts, durations) are RULES in web.ui.locale's page script."""

from __future__ import annotations

GRADIO_VERSION = "6.31.0"  # the frontend whose English strings TEXT and RULES translate

# Gradio's i18n keys that its Russian bundle lacks: those of its English bundle, and a few its components use
# with no translation at all (they would show as «common.complete»). launch(i18n=web.ui.locale.I18N) adds them.
RU_KEYS = {
    "audio.recording_error": "Не удалось начать запись с микрофона.",
    "chatbot.complete": "Готово",
    "common.back_to_app": "Приложение",
    "common.back_to_app_description": "Вернуться в приложение",
    "common.complete": "Готово",
    "common.download_all": "Скачать все",
    "common.progress": "Ход выполнения",
    "common.record": "Записать",
    "common.run": "Запустить",
    "common.runs": "Запуски",
    "common.runs_description": "Запуски, сохранённые в этом браузере",
    "common.screen_studio": "Запись экрана",
    "common.share_gradio_tab": "[Показ] вкладка Gradio",
    "common.stop_recording": "Остановить запись",
    "common.upload": "Загрузить",
    "common.video": "Видео",
    "common.webcam": "Веб-камера",
    "dataframe.clear_filter": "Сбросить фильтры",
    "dataframe.filter": "Фильтр",
    "dataframe.import_empty_file": "Перетащенный файл пуст.",
    "dataframe.import_fixed_columns": "В этой таблице ровно {expected} столбцов, а в файле — {actual}.",
    "dataframe.import_fixed_rows": "В этой таблице ровно {expected} строк, а в файле — {actual}.",
    "dataframe.import_no_column_names": "В перетащенном файле нет названий столбцов.",
    "dataframe.import_ragged_row": "В строке {line} файла полей: {fields}, а в заголовке: {columns}.",
    "dataframe.import_static_columns": "Нельзя импортировать в таблицу со столбцами только для чтения.",
    "image.no_webcam_support": "Веб-камера недоступна в этом браузере.",
    "model3d.drop_to_upload": "Перетащите сюда 3D-модель (.obj, .glb, .stl, .gltf, .splat или .ply)",
    "status.queue_position": "В очереди: {position} из {size}",
}

# Hard-coded English of the Gradio frontend → Russian. A key is the text of one element (whitespace collapsed)
# or the value of its title / aria-label / placeholder; an element whose text is split by child elements
# (a link, a code span) is keyed by its text pieces joined with "|" and maps to as many pieces.
# The API page's longest paragraphs first.
_FIND = ("2. Find the API endpoint below corresponding to your desired function in the app. Copy the code snippet, "
         "replacing the placeholder values with your own input data.|Or use the|to automatically generate your API "
         "requests.")
_FIND_RU = "2. Найдите ниже нужный метод API и скопируйте пример кода, подставив свои данные вместо примеров."
_CURL = ("Making a prediction and getting a result requires|: a|and a|request. The|request returns an|, which is used "
         "in the second|request to fetch the results. In these snippets, we've used|and|to parse the results, "
         "combining these two requests into one command for ease of use.|If your endpoint accepts files, you must "
         "first upload them via a|to|, then reference the returned path with the|key:|.|See|.")
_CURL_RU = [  # around: 2 requests, POST, GET, POST, EVENT_ID, GET, awk, read, POST, /upload, path, {…}, curl docs
    "Чтобы получить результат, нужны", ": сначала", ", затем", ". Запрос", "возвращает", ", по которому второй",
    "получает результат. В примерах его разбирают с помощью", "и", ", так что оба запроса умещаются в одну команду.",
    "Если метод принимает файлы, сначала загрузите их запросом", "на", ", а затем укажите полученный путь в ключе",
    ":", ".", "См.", ".",
]
_FILEDATA = ("The FileData class is a subclass of the GradioModel class that represents a file object within a Gradio "
             "interface. It is used to store file data and metadata when a file is uploaded. Attributes: path: The "
             "server file path where the file is stored. url: The normalized server URL pointing to the file. size: "
             "The size of the file in bytes. orig_name: The original filename before upload. mime_type: The MIME type "
             "of the file. is_stream: Indicates whether the file is a stream. meta: Additional metadata used "
             "internally (should not be changed).")

TEXT: dict[str, str | list[str]] = {
    # pop-ups
    "Error": "Ошибка",
    "Warning": "Предупреждение",
    "Info": "Сообщение",
    "Success": "Готово",
    "An error occurred.": "Произошла ошибка.",
    "Warning.": "Предупреждение.",
    "Info.": "Сообщение.",
    "Success.": "Готово.",
    "Close": "Закрыть",
    "Must be on Spaces to share.": "Поделиться можно только из Hugging Face Spaces.",
    "Share failed.": "Не удалось поделиться.",
    "An Unexpected Error Occurred!": "Произошла непредвиденная ошибка.",
    "Connection to the server was lost. Attempting reconnection...": "Связь с сервером потеряна. Переподключение…",
    "Loading...": "Загрузка…",
    "processing |": "обработка |",
    "from cache": "из кэша",
    "used cache": "из кэша",
    # buttons and tooltips
    "Copy": "Копировать",
    "Copied": "Скопировано",
    "Copied!": "Скопировано!",
    "Copy message": "Копировать сообщение",
    "Fullscreen": "Во весь экран",
    "Exit fullscreen mode": "Выйти из полноэкранного режима",
    "Remove Image": "Удалить изображение",
    "Remove this file": "Удалить файл",
    "Paste from clipboard": "Вставить из буфера обмена",
    "Upload file": "Загрузить файл",
    "File upload": "Загрузка файла",
    "Click to upload or drop files": "Нажмите или перетащите файлы, чтобы загрузить",
    "Empty value": "Пусто",
    "More tabs": "Другие вкладки",
    "chatbot conversation": "Диалог с моделью",
    "Gradio footer navigation": "Ссылки внизу страницы",
    "Download": "Скачать",
    "Clear": "Очистить",
    "Share": "Поделиться",
    "Nothing to copy": "Нечего копировать",
    "Clipboard API unavailable": "Буфер обмена недоступен",
    "Failed to write to clipboard": "Не удалось скопировать в буфер обмена",
    "Open copy menu": "Открыть меню копирования",
    "Close copy menu": "Закрыть меню копирования",
    "Copy menu": "Меню копирования",
    # the API page («Использовать через API»)
    "Choose one of the following ways to interact with the API.": "Выберите, как работать с API.",
    "Copy Page": "Копировать страницу",
    "Open in HuggingChat": "Открыть в HuggingChat",
    "1. Install the|client (|) if you don't already have it installed.":
        ["1. Установите клиент для", "(", "), если он ещё не установлен."],
    "docs": "документация",
    "1. Install the CLI if you don't already have it installed.": "1. Установите CLI, если он ещё не установлен.",
    "1. Confirm that you have cURL installed on your system.": "1. Убедитесь, что в системе установлен cURL.",
    _FIND: [_FIND_RU, "Или включите", "— запросы к API составятся сами."],
    _CURL: _CURL_RU,
    "2 requests": "2 запроса",
    "curl docs": "документацию curl",
    "First, install the HF CLI.": "Сначала установите HF CLI.",
    "On macOS and Linux:": "В macOS и Linux:",
    "On Windows:": "В Windows:",
    "Then, install the Gradio extension:": "Затем установите расширение Gradio:",
    "This Gradio app can also serve as an MCP server, with an MCP tool corresponding to each API endpoint. "
    "To enable this, launch this Gradio app with|or set the|env variable to|.": [
        "Это приложение может работать и как MCP-сервер, где каждому методу API соответствует инструмент MCP. "
        "Чтобы включить его, запустите приложение с", "или задайте переменной окружения", "значение", "."],
    "API name:": "Метод API:",
    "Required": "обязательный",
    "Default:": "По умолчанию:",
    "Most recently used": "Последний вызов",
    "Returns": "Возвращает",
    _FILEDATA: "Файл: путь на сервере, адрес (URL), размер в байтах, исходное имя, MIME-тип, признак потока "
               "и служебные метаданные (их не меняют).",
    "API Recorder": "Запись вызовов API",
    "Recording API Calls:": "Идёт запись вызовов API:",
    "🪄 Recorded API Calls": "🪄 Записанные вызовы API",
    "Note: Some API calls only affect the UI, so when using the clients, the desired result may be achieved "
    "with only a subset of the recorded calls.": "Часть вызовов влияет только на интерфейс, поэтому через клиент "
    "того же результата можно добиться и меньшим числом вызовов.",
    "API Documentation": "Документация API",
}
