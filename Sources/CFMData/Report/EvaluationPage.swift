import Foundation

/// `report.html` of an evaluation, for a line engineer: the verdict rates at the threshold (the
/// confusion matrix, false-reject and miss rates), the metrics overall and per defect type, the
/// ROC and PRO curves as images, and every test sample's picture with its score and verdict,
/// grouped by defect type, mistakes marked. Self-contained apart from images: the CSS is inline,
/// the curves are written next to the page (`roc.png`, `pro.png`), and sample pictures are
/// referenced by the paths given (relative to the page).
public struct EvaluationPage: Sendable {
    /// One test sample as the page lists it.
    public struct Sample: Sendable {
        /// `<defect>/<id>`.
        public var key: String
        /// The defect type folder (`good` for nominal parts).
        public var defect: String
        public var score: Float
        /// Whether the part is defective (the label the rates are computed against).
        public var anomalous: Bool
        /// The sample's picture (e.g. its overlay panel), relative to the page.
        public var image: String

        public init(key: String, defect: String, score: Float, anomalous: Bool, image: String) {
            (self.key, self.defect, self.score, self.anomalous, self.image) = (key, defect, score, anomalous, image)
        }
    }

    /// Heading, e.g. the class name.
    public var title: String
    /// Key–value lines describing what was evaluated (scorer, tier, model, data, …).
    public var details: [(String, String)]
    public var overall: DetectionMetrics
    public var byDefect: [String: DetectionMetrics]
    /// The decision threshold (score units); nil for an uncalibrated scorer (no rates then).
    public var threshold: Float?
    public var samples: [Sample]
    /// The overall PRO curve (`PROCurve(maps:truths:…)` over every test image), if defined.
    public var pro: PROCurve?

    public init(title: String, details: [(String, String)], overall: DetectionMetrics, byDefect: [String: DetectionMetrics],
                threshold: Float?, samples: [Sample], pro: PROCurve?) {
        (self.title, self.details, self.overall, self.byDefect) = (title, details, overall, byDefect)
        (self.threshold, self.samples, self.pro) = (threshold, samples, pro)
    }

    /// File names written next to the page.
    public static let pageFile = "report.html", rocFile = "roc.png", proFile = "pro.png"

    /// The rates at the threshold, nil without one.
    public var rates: ThresholdRates? {
        threshold.map { ThresholdRates(scores: samples.map(\.score), anomalous: samples.map(\.anomalous), threshold: $0) }
    }

    /// Writes `report.html`, `roc.png` and (with a PRO curve) `pro.png` into `directory`.
    public func write(to directory: URL) throws {
        let scores = samples.map(\.score), labels = samples.map(\.anomalous)
        let rates = self.rates
        let roc = ROCCurve(scores: scores, labels: labels)
        if let roc {
            var plot = CurvePlot(title: "ROC of the image scores", xLabel: "good parts rejected (FPR)",
                                 yLabel: "defective parts rejected (TPR)", xRange: 0...1, yRange: 0...1,
                                 xTicks: (0...5).map { Double($0) / 5 }, yTicks: (0...5).map { Double($0) / 5 },
                                 series: [.init(name: overall.imageAUROC.map { String(format: "I-AUROC %.3f", $0) } ?? "",
                                                x: roc.fpr, y: roc.tpr, colour: RGBColour(30, 90, 200))])
            plot.diagonal = true
            if let rates, let frr = rates.falseRejectRate, let miss = rates.missRate {
                plot.points = [.init(x: frr, y: 1 - miss, label: String(format: "threshold %.3f", rates.threshold),
                                     colour: RGBColour(220, 40, 40))]
            }
            try PNGFile.write(plot.render(), to: directory.appendingPathComponent(Self.rocFile))
        }
        if let pro {
            var plot = CurvePlot(title: "PRO up to 30 % false-positive pixels", xLabel: "good pixels called anomalous (FPR)",
                                 yLabel: "per-region overlap (PRO)", xRange: 0...0.3, yRange: 0...1,
                                 xTicks: (0...6).map { Double($0) / 20 }, yTicks: (0...5).map { Double($0) / 5 },
                                 series: [.init(name: overall.auPRO.first.flatMap { $0 }.map { String(format: "AUPRO@30%% %.3f", $0) } ?? "",
                                                x: pro.fpr, y: pro.pro, colour: RGBColour(20, 150, 90))])
            plot.markers = [(0.01, "1%"), (0.05, "5%"), (0.1, "10%")]
            try PNGFile.write(plot.render(), to: directory.appendingPathComponent(Self.proFile))
        }
        try Data(html(rates: rates, roc: roc != nil).utf8).write(to: directory.appendingPathComponent(Self.pageFile),
                                                                 options: .atomic)
    }

    /// The page's HTML.
    func html(rates: ThresholdRates?, roc: Bool) -> String {
        var page = """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><title>\(escape(title)) — cfm evaluation</title>
            <style>
            body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #1e1e1e; background: #fafafa; }
            h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; }
            table { border-collapse: collapse; background: #fff; } td, th { border: 1px solid #ccc; padding: 4px 10px; text-align: right; }
            th { background: #eee; } td.k, th.k { text-align: left; }
            .details td { border: none; padding: 1px 12px 1px 0; text-align: left; background: #fafafa; }
            .rates { display: flex; gap: 32px; align-items: flex-start; flex-wrap: wrap; }
            .big { font-size: 26px; font-weight: 600; } .ok { color: #1e8c3c; } .bad { color: #c82323; }
            .curves img { width: 480px; margin-right: 16px; border: 1px solid #ddd; }
            .grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(600px, 1fr)); gap: 12px; }
            .card { background: #fff; border: 1px solid #ccc; border-left: 6px solid #999; padding: 6px; }
            .card img { width: 100%; display: block; } .card div { margin-top: 4px; }
            .card.pass { border-left-color: #1e8c3c; } .card.reject { border-left-color: #c82323; }
            .card.mistake { outline: 3px solid #e0a000; }
            .tag { font-weight: 600; padding: 0 6px; border-radius: 3px; color: #fff; }
            .tag.pass { background: #1e8c3c; } .tag.reject { background: #c82323; } .tag.mistake { background: #e0a000; color: #000; }
            </style></head><body>
            <h1>\(escape(title))</h1>
            <table class="details">\(details.map { "<tr><td>\(escape($0.0))</td><td>\(escape($0.1))</td></tr>" }.joined())</table>

            """
        page += "<h2>At the threshold</h2>\n"
        if let rates {
            func percent(_ v: Double?) -> String { v.map { String(format: "%.1f %%", 100 * $0) } ?? "n/a" }
            page += """
                <div class="rates">
                <div><div>false-reject rate (good parts rejected)</div><div class="big \(rates.rejectedGood == 0 ? "ok" : "bad")">\(percent(rates.falseRejectRate))</div>
                <div>\(rates.rejectedGood) of \(rates.rejectedGood + rates.passedGood) good parts</div></div>
                <div><div>miss rate (defective parts passed)</div><div class="big \(rates.passedDefective == 0 ? "ok" : "bad")">\(percent(rates.missRate))</div>
                <div>\(rates.passedDefective) of \(rates.passedDefective + rates.rejectedDefective) defective parts</div></div>
                <table><tr><th class="k">threshold \(String(format: "%.4f", rates.threshold))</th><th>passed</th><th>rejected</th></tr>
                <tr><th class="k">good</th><td>\(rates.passedGood)</td><td>\(rates.rejectedGood)</td></tr>
                <tr><th class="k">defective</th><td>\(rates.passedDefective)</td><td>\(rates.rejectedDefective)</td></tr></table>
                </div>

                """
        } else {
            page += "<p>No calibrated threshold: no verdicts, no rates (run <code>cfm calibrate</code>).</p>\n"
        }

        func value(_ v: Double?) -> String { v.map { String(format: "%.4f", $0) } ?? "n/a" }
        func row(_ name: String, _ m: DetectionMetrics) -> String {
            "<tr><td class=\"k\">\(escape(name))</td><td>\(m.samples)</td><td>\(m.anomalous)</td><td>\(value(m.imageAUROC))</td>"
                + "<td>\(value(m.pixelAUROC))</td>" + m.auPRO.map { "<td>\(value($0))</td>" }.joined() + "</tr>"
        }
        page += "<h2>Metrics</h2>\n<table><tr><th class=\"k\">set</th><th>samples</th><th>defective</th><th>I-AUROC</th><th>P-AUROC</th>"
            + PROCurve.limits.map { "<th>AUPRO@\(DetectionMetrics.percent($0))</th>" }.joined() + "</tr>\n"
            + row("all", overall) + "\n"
            + byDefect.keys.sorted().map { row("good + \($0)", byDefect[$0]!) }.joined(separator: "\n") + "</table>\n"

        page += "<h2>Curves</h2>\n<div class=\"curves\">"
            + (roc ? "<img src=\"\(Self.rocFile)\" alt=\"ROC curve\">" : "<p>ROC undefined (one class only).</p>")
            + (pro != nil ? "<img src=\"\(Self.proFile)\" alt=\"PRO curve\">" : "<p>PRO undefined (no ground-truth region).</p>")
            + "</div>\n"

        let groups = Dictionary(grouping: samples, by: \.defect)
        let order = groups.keys.sorted { ($0 == "good" ? 0 : 1, $0) < ($1 == "good" ? 0 : 1, $1) }
        for defect in order {
            let group = groups[defect]!.sorted { $0.score > $1.score }
            let rejected = threshold.map { t in group.filter { $0.score > t }.count }
            page += "<h2>\(escape(defect)): \(group.count) sample\(group.count == 1 ? "" : "s")" + (rejected.map { ", \($0) rejected" } ?? "") + "</h2>\n<div class=\"grid\">\n"
            for sample in group {
                let reject = threshold.map { sample.score > $0 }
                let mistake = reject.map { $0 != sample.anomalous } ?? false
                let verdict = reject.map { $0 ? "reject" : "pass" }
                var caption = "<b>\(escape(sample.key))</b> score \(String(format: "%.4f", sample.score))"
                if let verdict { caption += " <span class=\"tag \(verdict)\">\(verdict.uppercased())</span>" }
                if mistake { caption += " <span class=\"tag mistake\">\(sample.anomalous ? "MISSED" : "FALSE REJECT")</span>" }
                page += "<div class=\"card \(verdict ?? "")\(mistake ? " mistake" : "")\"><a href=\"\(escape(sample.image))\">"
                    + "<img loading=\"lazy\" src=\"\(escape(sample.image))\" alt=\"\(escape(sample.key))\"></a><div>\(caption)</div></div>\n"
            }
            page += "</div>\n"
        }
        return page + "</body></html>\n"
    }

    private func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}
