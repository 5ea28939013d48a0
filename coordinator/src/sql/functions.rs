//! The analyses (docs/analysis.md) as SQL table functions:
//!
//! - `compare(indicator, from_year, to_year [, against [, standard]])`
//! - `trend(indicator, from_year, to_year [, standard])`
//! - `equity(indicator, from_year, to_year, dimension [, standard])`
//! - `funnel(indicator, from_year, to_year [, units [, against]])`
//! - `evaluate(cohort_indicator, from_year, to_year)`
//!
//! Each asks the coordinator one question with `options.analysis` and returns the analysis
//! table (columns as in docs/protocol.md), so it joins and filters like any table.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::DataFusionError;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::TableType;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use norrsken_model::analysis::schema_for;
use norrsken_model::catalog::Catalog;
use norrsken_model::query::{AnalysisKind, AnalysisSpec, Comparator, IndicatorQuery, QueryOptions};

use super::table::literal_text;
use norrsken_common::service::federation::Federation;

/// One analysis kind as a table function.
#[derive(Debug)]
pub struct AnalysisFunction {
    pub kind: AnalysisKind,
    pub catalog: Arc<Catalog>,
    pub asker: Arc<dyn Federation>,
}

impl AnalysisFunction {
    fn usage(&self) -> &'static str {
        match self.kind {
            AnalysisKind::Compare => "compare('indicator', from_year, to_year [, 'pooled'|'others'|'target' [, 'esp2013'|'se2020']])",
            AnalysisKind::Trend => "trend('indicator', from_year, to_year [, 'esp2013'|'se2020'])",
            AnalysisKind::Equity => "equity('indicator', from_year, to_year, 'dimension' [, 'esp2013'|'se2020'])",
            AnalysisKind::Funnel => "funnel('indicator', from_year, to_year [, 'region'|'kommun' [, 'pooled'|'target']])",
            AnalysisKind::Evaluate => "evaluate('cohort_indicator', from_year, to_year)",
        }
    }

    /// The question a call asks.
    pub fn question(&self, args: &[Expr]) -> Result<IndicatorQuery, String> {
        let usage = || format!("use {}", self.usage());
        let text: Vec<String> = args.iter().map(|a| literal_text(a).ok_or_else(|| format!("{a} is not a literal; {}", usage()))).collect::<Result<_, _>>()?;
        if text.len() < 3 {
            return Err(usage());
        }
        let year = |s: &str| s.parse::<i32>().map_err(|_| format!("{s:?} is not a year; {}", usage()));
        let (from, to) = (year(&text[1])?, year(&text[2])?);
        let extra = |i: usize| text.get(i).cloned();
        let against = |s: Option<String>| -> Result<Comparator, String> {
            match s {
                None => Ok(Comparator::Pooled),
                Some(s) => Comparator::parse(&s).ok_or_else(|| format!("{s:?} is not pooled, others or target; {}", usage())),
            }
        };
        let (spec, standard) = match self.kind {
            AnalysisKind::Compare => (AnalysisSpec { kind: self.kind, against: against(extra(3))?, dimension: None, units: None }, extra(4)),
            AnalysisKind::Trend => (AnalysisSpec { kind: self.kind, against: Comparator::Pooled, dimension: None, units: None }, extra(3)),
            AnalysisKind::Equity => (AnalysisSpec { kind: self.kind, against: Comparator::Pooled, dimension: Some(extra(3).ok_or_else(usage)?), units: None }, extra(4)),
            AnalysisKind::Funnel => (AnalysisSpec { kind: self.kind, against: against(extra(4))?, dimension: None, units: extra(3) }, None),
            AnalysisKind::Evaluate => (AnalysisSpec { kind: self.kind, against: Comparator::Pooled, dimension: None, units: None }, None),
        };
        Ok(IndicatorQuery {
            indicator: text[0].clone(),
            period: if from == to { from.to_string() } else { format!("{from}..{to}") },
            options: QueryOptions { analysis: Some(spec), standardise: standard, ..Default::default() },
            ..Default::default()
        })
    }
}

impl TableFunctionImpl for AnalysisFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> datafusion::error::Result<Arc<dyn TableProvider>> {
        let q = self.question(args.exprs()).map_err(DataFusionError::Plan)?;
        let v = q.validate(&self.catalog, None).map_err(|e| DataFusionError::Plan(e.to_string()))?;
        let spec = v.options.analysis.clone().ok_or_else(|| DataFusionError::Plan(self.usage().into()))?;
        let schema = Arc::new(schema_for(&spec, &v.breakdowns, v.options.standardise.is_some()));
        Ok(Arc::new(AnalysisProvider { question: q, schema, asker: self.asker.clone() }))
    }
}

/// The analysis table of one call.
#[derive(Debug)]
struct AnalysisProvider {
    question: IndicatorQuery,
    schema: SchemaRef,
    asker: Arc<dyn Federation>,
}

#[tonic::async_trait]
impl TableProvider for AnalysisProvider {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(&self, _state: &dyn Session, projection: Option<&Vec<usize>>, _filters: &[Expr], _limit: Option<usize>) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let answer = self.asker.ask(self.question.clone()).await.map_err(super::table::asked)?;
        let batch = answer.to_record_batch().map_err(|e| DataFusionError::Execution(e.to_string()))?;
        // The answer's schema carries metadata; the table's is the bare one.
        let batch = arrow::array::RecordBatch::try_new(self.schema.clone(), batch.columns().to_vec())
            .map_err(|e| DataFusionError::Execution(format!("the analysis answer does not match its schema: {e}")))?;
        Ok(MemorySourceConfig::try_new_exec(&[vec![batch]], self.schema.clone(), projection.cloned())?)
    }
}
