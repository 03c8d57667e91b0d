//! Reading a Prometheus text page (what Duet's `/metrics` serves), for the bench's readouts
//! and the black-box tests.

/// The sum of the samples of `metric` on a Prometheus text page (what `/metrics` serves)
/// whose labels include `label` (e.g. `phase="commit"`), or of all its samples when `label`
/// is `None`; `None` when the page has no such sample. A metric whose name merely starts
/// with `metric` is not counted.
pub fn sample_sum(page: &str, metric: &str, label: Option<&str>) -> Option<f64> {
    let samples: Vec<f64> = page
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let rest = line.strip_prefix(metric)?;
            let labels = match rest.strip_prefix('{') {
                Some(rest) => rest.split_once('}')?.0,
                None if rest.starts_with(' ') => "",
                None => return None,
            };
            let wanted = label.is_none_or(|l| labels.split(',').any(|have| have == l));
            wanted.then(|| line.rsplit(' ').next()?.parse().ok())?
        })
        .collect();
    (!samples.is_empty()).then(|| samples.iter().sum())
}

#[cfg(test)]
mod tests {
    use super::sample_sum;

    #[test]
    fn samples_are_summed_by_label_and_never_under_a_longer_name() {
        let page = "# TYPE t counter\n\
                    t_total{phase=\"a\",x=\"1\"} 2\n\
                    t_total{phase=\"b\"} 3\n\
                    t_total_extra 100\n";
        assert_eq!(sample_sum(page, "t_total", None), Some(5.0));
        assert_eq!(sample_sum(page, "t_total", Some("phase=\"a\"")), Some(2.0));
        assert_eq!(sample_sum(page, "t_total", Some("phase=\"c\"")), None);
        assert_eq!(sample_sum(page, "t", None), None);
    }
}
