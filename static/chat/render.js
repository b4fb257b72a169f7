// Model output to safe DOM: markdown (marked), code highlighting (highlight.js)
// and LaTeX math (Temml, as MathML), then sanitised by DOMPurify AFTER
// rendering, so nothing a model writes can run or load anything:
// - raw HTML in the markdown is shown as text, never parsed as HTML;
// - links keep only http(s) and mailto targets and open in a new tab;
// - images load only from data: URLs; any other image becomes a link;
// - DOMPurify then removes scripts, event handlers, styles, forms, frames
//   and anything else outside plain HTML and MathML, whatever slipped by.
// The page's Content-Security-Policy is a second wall, not the first.
(function () {
  "use strict";

  var SAFE_LINK = /^(https?:|mailto:)/i;
  var DATA_IMAGE = /^data:image\/(png|jpeg|gif|webp);base64,[a-z0-9+/=]+$/i;

  function escapeHtml(text) {
    return String(text)
      .replace(/&/g, "&amp;")
      .replace(/</g, "&lt;")
      .replace(/>/g, "&gt;")
      .replace(/"/g, "&quot;")
      .replace(/'/g, "&#39;");
  }

  function renderMath(tex, display) {
    try {
      // Temml writes a few inline styles (display math: "display:block math");
      // the page's CSP would refuse them while parsing, and Temml-Local.css
      // already does the same through classes, so they are dropped here.
      return window.temml
        .renderToString(tex, { displayMode: display, throwOnError: false, trust: false })
        .replace(/ style="[^"]*"/g, "");
    } catch (error) {
      return "<code>" + escapeHtml(tex) + "</code>";
    }
  }

  // $$...$$ and \[...\] on their own lines; $...$ and \(...\) inline. A lone
  // "$5 and $10" stays text (no space inside the delimiters, no digit after).
  var mathBlock = {
    name: "mathBlock",
    level: "block",
    start: function (src) {
      var match = src.match(/\$\$|\\\[/);
      return match ? match.index : undefined;
    },
    tokenizer: function (src) {
      var match = /^(?:\$\$([\s\S]+?)\$\$|\\\[([\s\S]+?)\\\])[ \t]*(?:\n|$)/.exec(src);
      if (match) {
        return { type: "mathBlock", raw: match[0], text: (match[1] || match[2]).trim() };
      }
      return undefined;
    },
    renderer: function (token) {
      return '<div class="math-block">' + renderMath(token.text, true) + "</div>";
    },
  };

  var mathInline = {
    name: "mathInline",
    level: "inline",
    start: function (src) {
      var match = src.match(/\$|\\\(/);
      return match ? match.index : undefined;
    },
    tokenizer: function (src) {
      var match =
        /^\$\$([^$]+?)\$\$/.exec(src) ||
        /^\\\(([\s\S]+?)\\\)/.exec(src) ||
        /^\$(?![\s$])([^$\n]+?)(?<!\s)\$(?!\d)/.exec(src);
      if (match) {
        return {
          type: "mathInline",
          raw: match[0],
          text: match[1],
          display: match[0].indexOf("$$") === 0,
        };
      }
      return undefined;
    },
    renderer: function (token) {
      return renderMath(token.text, token.display);
    },
  };

  function highlighted(text, lang) {
    var hljs = window.hljs;
    if (lang && hljs && hljs.getLanguage(lang)) {
      try {
        return hljs.highlight(text, { language: lang, ignoreIllegals: true }).value;
      } catch (error) {
        // fall through to plain text
      }
    }
    return escapeHtml(text);
  }

  var renderer = {
    // Raw HTML from the model is text, not markup.
    html: function (token) {
      return escapeHtml(token.text);
    },
    link: function (token) {
      var label = this.parser.parseInline(token.tokens);
      if (!SAFE_LINK.test(token.href || "")) {
        return label;
      }
      var title = token.title ? ' title="' + escapeHtml(token.title) + '"' : "";
      return '<a href="' + escapeHtml(token.href) + '"' + title + ">" + label + "</a>";
    },
    image: function (token) {
      var href = token.href || "";
      var alt = token.text || "image";
      if (DATA_IMAGE.test(href)) {
        return '<img src="' + escapeHtml(href) + '" alt="' + escapeHtml(alt) + '">';
      }
      if (SAFE_LINK.test(href)) {
        return (
          '<a class="image-link" href="' + escapeHtml(href) + '">' +
          "[image: " + escapeHtml(alt) + "]</a>"
        );
      }
      return escapeHtml("[image: " + alt + "]");
    },
    code: function (token) {
      var lang = (token.lang || "").trim().split(/\s+/)[0].toLowerCase();
      return (
        '<div class="code-block" data-lang="' + escapeHtml(lang) + '"><pre><code class="hljs">' +
        highlighted(token.text, lang) +
        "</code></pre></div>"
      );
    },
  };

  var parser = null;

  function markdownParser() {
    if (!parser) {
      parser = new window.marked.Marked({ gfm: true, breaks: false, async: false });
      parser.use({ renderer: renderer, extensions: [mathBlock, mathInline] });
    }
    return parser;
  }

  var PURIFY = {
    USE_PROFILES: { html: true, mathMl: true },
    FORBID_TAGS: ["style", "form", "input", "button", "textarea", "select", "option"],
    FORBID_ATTR: ["style", "srcset", "action", "formaction", "ping"],
    ALLOW_UNKNOWN_PROTOCOLS: false,
    RETURN_DOM_FRAGMENT: true,
  };

  var hooked = false;

  function purifyHooks() {
    if (hooked) {
      return;
    }
    hooked = true;
    window.DOMPurify.addHook("afterSanitizeAttributes", function (node) {
      if (node.nodeName === "A") {
        var href = node.getAttribute("href") || "";
        if (!SAFE_LINK.test(href)) {
          node.removeAttribute("href");
        }
        node.setAttribute("target", "_blank");
        node.setAttribute("rel", "noopener noreferrer nofollow");
      } else if (node.nodeName === "IMG") {
        var src = node.getAttribute("src") || "";
        if (!DATA_IMAGE.test(src)) {
          // Whatever got here as an image from elsewhere is shown as a link.
          node.setAttribute("data-remote-src", src);
          node.removeAttribute("src");
        }
      }
    });
  }

  function imagesToLinks(fragment) {
    fragment.querySelectorAll("img[data-remote-src]").forEach(function (img) {
      var src = img.getAttribute("data-remote-src");
      var label = document.createTextNode("[image: " + (img.getAttribute("alt") || "image") + "]");
      if (SAFE_LINK.test(src)) {
        var link = document.createElement("a");
        link.href = src;
        link.target = "_blank";
        link.rel = "noopener noreferrer nofollow";
        link.className = "image-link";
        link.appendChild(label);
        img.replaceWith(link);
      } else {
        img.replaceWith(label);
      }
    });
  }

  function sanitize(html) {
    purifyHooks();
    var fragment = window.DOMPurify.sanitize(html, PURIFY);
    imagesToLinks(fragment);
    return fragment;
  }

  // Markdown source to a sanitised DocumentFragment.
  function markdown(source) {
    var html;
    try {
      html = markdownParser().parse(source || "");
    } catch (error) {
      html = "<p>" + escapeHtml(source || "") + "</p>";
    }
    return sanitize(html);
  }

  window.PorticoRender = { markdown: markdown, sanitize: sanitize, escapeHtml: escapeHtml };
})();
