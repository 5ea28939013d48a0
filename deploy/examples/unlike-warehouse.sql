-- A region's own warehouse, named and coded its own way (the worked example of
-- docs/deploy.md). Here it is built from a CDM-shaped copy (schema "cdm") so that tests can
-- compare answers; a real region already has tables like these.
CREATE SCHEMA dw;

-- The population register extract.
CREATE TABLE dw.patient AS SELECT
    person_id AS lopnr,
    birth_year AS fodelsear,
    birth_month AS fodelsemanad,
    CASE sex WHEN 'male' THEN 1 ELSE 2 END AS kon,                 -- 1 man, 2 kvinna
    kommun AS folkbokforingskommun,
    CASE education WHEN 'primary' THEN 'F' WHEN 'secondary' THEN 'G' WHEN 'tertiary' THEN 'E' END AS utbildningsniva,
    CASE birth_country WHEN 'sweden' THEN 'SE' WHEN 'nordic' THEN 'NORDEN' WHEN 'europe' THEN 'EUROPA' ELSE 'OVRIGA' END AS fodelseland_grupp,
    income_quintile AS inkomstkvintil,
    death_date AS dodsdatum
FROM cdm.persons;

-- Care contacts.
CREATE TABLE dw.vardkontakt AS SELECT
    contact_id AS kontakt_id,
    person_id AS lopnr,
    start_time AS inskrivning,
    end_time AS utskrivning,
    CASE care_type WHEN 'inpatient' THEN 'SV' WHEN 'specialist_outpatient' THEN 'SPO' ELSE 'PV' END AS vardform,
    CASE WHEN acute THEN 'A' ELSE 'P' END AS akut_planerad,
    profession AS yrkeskategori,
    care_unit AS vardenhet,
    home_kommun AS hemkommun,
    main_diagnosis AS hdia,
    cost_sek AS kpp_kostnad
FROM cdm.contacts;

CREATE TABLE dw.bidiagnos AS SELECT contact_id AS kontakt_id, person_id AS lopnr, position AS ordning, code AS diagnoskod FROM cdm.diagnoses;
CREATE TABLE dw.atgard AS SELECT contact_id AS kontakt_id, person_id AS lopnr, code AS kva_kod, performed_at AS utford FROM cdm.procedures;
CREATE TABLE dw.lakemedel AS SELECT person_id AS lopnr, atc, dispensed_date AS expeditionsdatum, packages AS antal_forpackningar, ddd AS antal_ddd FROM cdm.drugs;
CREATE TABLE dw.matvarde AS SELECT
    person_id AS lopnr,
    CASE kind WHEN 'hba1c' THEN 'HBA1C' WHEN 'ldl' THEN 'LDL' WHEN 'sbp' THEN 'BT_SYS' WHEN 'dbp' THEN 'BT_DIA' ELSE 'BMI' END AS analys,
    measured_at AS provdatum,
    value AS resultat,
    unit AS enhet
FROM cdm.measurements;
