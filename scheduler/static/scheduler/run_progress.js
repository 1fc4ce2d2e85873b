"use strict";
// A run's progress bar (its page, the overview's "running now"): while the run is active,
// its JSON (data-progress-url) is read again every data-every milliseconds and the bar, its
// figures and the job's message follow it, with no reload. Polling stops when the run ends
// (the bar then says so, with a link to reload the page for the outcome), when the JSON is
// refused, or after a few failures in a row; it pauses while the tab is hidden.
{
    const MAX_FAILURES = 5;

    function show(box, data) {
        const bar = box.querySelector(".scheduler-progress-bar");
        if (data.progress === null) {
            bar.hidden = true;
        } else if (data.percent === null) {
            bar.hidden = false;
            bar.removeAttribute("value"); // no value: an indeterminate bar
            bar.textContent = "";
        } else {
            bar.hidden = false;
            bar.max = 100;
            bar.value = data.percent;
            bar.textContent = data.percent + "%";
        }
        box.querySelector(".scheduler-progress-figures").textContent = data.figures;
        box.querySelector(".scheduler-progress-message").textContent = data.message;
        box.title = data.reported_at;
    }

    function ended(box, data) {
        box.dataset.active = "false";
        const state = box.querySelector(".scheduler-progress-state");
        state.textContent = "The run ended: " + data.status_label.toLowerCase() + ". ";
        const reload = document.createElement("a");
        reload.href = window.location.href;
        reload.textContent = "Reload for its outcome";
        state.appendChild(reload);
    }

    function poll(box, failures) {
        const every = Number(box.dataset.every) || 1500;
        const again = (count) => window.setTimeout(() => poll(box, count), every * (count + 1));
        if (document.hidden) {
            document.addEventListener("visibilitychange", () => poll(box, failures), {once: true});
            return;
        }
        fetch(box.dataset.progressUrl, {
            credentials: "same-origin",
            headers: {"Accept": "application/json"},
            redirect: "error", // a login page instead of the JSON: the session is over
        })
            .then((response) => {
                if (response.status >= 400 && response.status < 500) {
                    throw new Error("refused");
                }
                return response.ok ? response.json() : Promise.reject(new Error("failed"));
            })
            .then((data) => {
                show(box, data);
                if (data.active) {
                    again(0);
                } else {
                    ended(box, data);
                }
            })
            .catch((error) => {
                if (error.message !== "refused" && failures + 1 < MAX_FAILURES) {
                    again(failures + 1);
                }
            });
    }

    function start() {
        document.querySelectorAll(".scheduler-progress[data-active='true']").forEach((box) => {
            const every = Number(box.dataset.every) || 1500;
            window.setTimeout(() => poll(box, 0), every);
        });
    }

    if (document.readyState === "loading") {
        document.addEventListener("DOMContentLoaded", start);
    } else {
        start();
    }
}
