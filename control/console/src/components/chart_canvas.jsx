// A Chart.js chart on a canvas, with the same figures as a table for screen readers.
import {
  BarController,
  BarElement,
  CategoryScale,
  Chart,
  Legend,
  LinearScale,
  LineController,
  LineElement,
  PointElement,
  Tooltip,
} from "chart.js";
import { useEffect, useRef } from "preact/hooks";

Chart.register(
  BarController,
  BarElement,
  CategoryScale,
  Legend,
  LinearScale,
  LineController,
  LineElement,
  PointElement,
  Tooltip,
);

// `labels` along the x axis; `series` [{label, values, color, dash}].
export function ChartCanvas({ type = "line", title, labels, series }) {
  const canvas = useRef(null);
  const chart = useRef(null);
  useEffect(() => {
    const data = {
      labels,
      datasets: series.map((s) => ({
        label: s.label,
        data: s.values,
        borderColor: s.color,
        backgroundColor: s.color,
        borderDash: s.dash || [],
        pointStyle: s.point || "circle",
        tension: 0.2,
      })),
    };
    if (chart.current && chart.current.config.type !== type) {
      chart.current.destroy();
      chart.current = null;
    }
    if (chart.current) {
      chart.current.data = data;
      chart.current.update();
    } else {
      chart.current = new Chart(canvas.current, {
        type,
        data,
        options: {
          responsive: true,
          maintainAspectRatio: false,
          animation: false,
          plugins: { legend: { labels: { usePointStyle: true } } },
          scales: { y: { beginAtZero: true, ticks: { precision: 0 } } },
        },
      });
    }
  }, [type, labels, series]);
  useEffect(() => () => chart.current?.destroy(), []);
  return (
    <figure class="chart">
      <figcaption>{title}</figcaption>
      <div class="chart-box">
        <canvas ref={canvas} role="img" aria-label={`${title}: chart; the table below has the figures`} />
      </div>
      <details>
        <summary>Figures of “{title}”</summary>
        <table>
          <thead>
            <tr>
              <th scope="col">When</th>
              {series.map((s) => (
                <th scope="col" key={s.label}>
                  {s.label}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {labels.map((at, i) => (
              <tr key={at}>
                <th scope="row">{at}</th>
                {series.map((s) => (
                  <td key={s.label}>{s.values[i]}</td>
                ))}
              </tr>
            ))}
          </tbody>
        </table>
      </details>
    </figure>
  );
}
