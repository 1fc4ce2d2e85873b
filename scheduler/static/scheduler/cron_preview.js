"use strict";
// Live cron preview: the expression in words and its next fire times, refreshed as one types.
{
    const DELAY_MS = 250;

    function element(tag, className, text) {
        const node = document.createElement(tag);
        if (className) {
            node.className = className;
        }
        if (text !== undefined) {
            node.textContent = text;
        }
        return node;
    }

    function render(box, data) {
        box.replaceChildren();
        if (!data) {
            return;
        }
        if (data.description) {
            box.append(element("p", "scheduler-cron-description", data.description));
        }
        if (data.error) {
            box.append(element("p", "scheduler-cron-error", data.error));
        }
        const times = data.next_display && data.next_display.length ? data.next_display : data.next || [];
        if (times.length) {
            box.append(element("p", "scheduler-cron-next-title", "Next runs in " + data.timezone + ":"));
            const list = element("ol", "scheduler-next");
            times.forEach((moment) => list.append(element("li", "", moment)));
            box.append(list);
        }
    }

    function init(box) {
        const cronInput = document.getElementById(box.dataset.cronInput);
        const zoneInput = document.getElementById(box.dataset.timezoneInput);
        if (!cronInput) {
            return;
        }
        let timer = null;
        let controller = null;

        function refresh() {
            const expr = cronInput.value.trim();
            if (controller) {
                controller.abort();
            }
            if (!expr) {
                render(box, null);
                return;
            }
            controller = new AbortController();
            const query = new URLSearchParams({cron: expr, timezone: zoneInput ? zoneInput.value.trim() : ""});
            fetch(box.dataset.previewUrl + "?" + query.toString(), {
                credentials: "same-origin",
                headers: {Accept: "application/json"},
                signal: controller.signal,
            })
                .then((response) => {
                    if (!response.ok) {
                        throw new Error("preview unavailable (HTTP " + response.status + ")");
                    }
                    return response.json();
                })
                .then((data) => render(box, data))
                .catch((error) => {
                    if (error.name !== "AbortError") {
                        render(box, {error: String(error.message || error)});
                    }
                });
        }

        function later() {
            clearTimeout(timer);
            timer = setTimeout(refresh, DELAY_MS);
        }

        cronInput.addEventListener("input", later);
        if (zoneInput) {
            zoneInput.addEventListener("input", later);
            zoneInput.addEventListener("change", later);
        }
    }

    function start() {
        document.querySelectorAll(".scheduler-cron-preview[data-preview-url]").forEach(init);
    }

    if (document.readyState === "loading") {
        document.addEventListener("DOMContentLoaded", start);
    } else {
        start();
    }
}
