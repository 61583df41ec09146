/*
 * offload-status.js: poll a job's status and draw its progress. No build step, no
 * dependencies, no inline script needed: load it with
 *
 *   <script src="/offload/static/offload-status.js" defer></script>
 *
 * and mark up an element with the status URL (what job.status_token() is for):
 *
 *   <div data-offload-status="/offload/status/TOKEN">
 *     <progress data-offload-bar max="100"></progress>
 *     <span data-offload-percent></span> <span data-offload-state></span>
 *     <p data-offload-message></p>
 *     <ul data-offload-log></ul>
 *   </div>
 *
 * Every child is optional. The bar may be a <progress> (its value is set) or any
 * element (its width is set in percent). The element gets data-state="<state>" and the
 * events "offload:update" and, once the job is finished, "offload:done" (detail: the
 * status JSON); "offload:error" when the status cannot be read (detail: the HTTP status,
 * 404 for an unknown or expired token, which ends the polling). Polling runs every
 * data-offload-interval milliseconds (default 1000), slower while requests fail.
 *
 * From script: OffloadStatus.watch(element, url, {interval: 500}) returns {stop()}.
 */
(function () {
  "use strict";

  function each(root, selector, fn) {
    var found = root.querySelectorAll(selector);
    for (var i = 0; i < found.length; i++) fn(found[i]);
  }

  function emit(el, name, detail) {
    el.dispatchEvent(new CustomEvent(name, { detail: detail, bubbles: true }));
  }

  function render(el, status) {
    var progress = status.progress || {};
    var percent = progress.percent;
    if (status.state === "succeeded") percent = 100;
    el.setAttribute("data-state", status.state);
    each(el, "[data-offload-bar]", function (bar) {
      if (percent === null || percent === undefined) {
        if (bar.tagName === "PROGRESS") bar.removeAttribute("value");
        bar.removeAttribute("aria-valuenow");
        return;
      }
      if (bar.tagName === "PROGRESS") {
        bar.max = 100;
        bar.value = percent;
      } else {
        bar.style.width = percent + "%";
        bar.setAttribute("role", "progressbar");
        bar.setAttribute("aria-valuemin", "0");
        bar.setAttribute("aria-valuemax", "100");
      }
      bar.setAttribute("aria-valuenow", String(Math.round(percent)));
    });
    each(el, "[data-offload-percent]", function (node) {
      node.textContent = percent === null || percent === undefined ? "" : Math.floor(percent) + " %";
    });
    each(el, "[data-offload-state]", function (node) {
      node.textContent = status.state;
    });
    each(el, "[data-offload-message]", function (node) {
      node.textContent = progress.message || "";
    });
    each(el, "[data-offload-log]", function (list) {
      var messages = status.messages || [];
      while (list.children.length > messages.length) list.removeChild(list.lastChild);
      for (var i = list.children.length; i < messages.length; i++) {
        var item = document.createElement("li");
        item.textContent = messages[i].text; // text, never HTML
        list.appendChild(item);
      }
    });
  }

  function watch(el, url, options) {
    var interval = (options && options.interval) || 1000;
    var delay = interval;
    var timer = null;
    var stopped = false;

    function schedule(ms) {
      if (!stopped) timer = window.setTimeout(poll, ms);
    }

    function poll() {
      fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin", cache: "no-store" })
        .then(function (response) {
          if (response.status === 404) {
            emit(el, "offload:error", 404);
            el.setAttribute("data-state", "unknown");
            stopped = true;
            return null;
          }
          if (!response.ok) throw response.status;
          return response.json();
        })
        .then(function (status) {
          if (status === null) return;
          delay = interval;
          render(el, status);
          emit(el, "offload:update", status);
          if (status.finished) {
            stopped = true;
            emit(el, "offload:done", status);
          } else {
            schedule(interval);
          }
        })
        .catch(function (problem) {
          emit(el, "offload:error", typeof problem === "number" ? problem : 0);
          delay = Math.min(delay * 2, 30000);
          schedule(delay);
        });
    }

    poll();
    return {
      stop: function () {
        stopped = true;
        if (timer !== null) window.clearTimeout(timer);
      },
    };
  }

  function start() {
    each(document, "[data-offload-status]", function (el) {
      if (el.getAttribute("data-offload-watching")) return;
      el.setAttribute("data-offload-watching", "1");
      var interval = parseInt(el.getAttribute("data-offload-interval") || "", 10);
      watch(el, el.getAttribute("data-offload-status"), { interval: interval > 0 ? interval : 1000 });
    });
  }

  window.OffloadStatus = { watch: watch, start: start };
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
